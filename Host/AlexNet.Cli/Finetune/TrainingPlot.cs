using AlexNet.Cuda.Export;

namespace AlexNet.Cli.Finetune;

/// <summary>
/// <c>--plot FILE.png</c>: the loss (left axis) and top-1 accuracy (right axis) per epoch, training and validation,
/// drawn with ScottPlot on SkiaSharp without a display. The SkiaSharp build the engine ships (no fontconfig, for
/// the image decoder) finds no system font by itself, so the plot loads DejaVu Sans from its file where Debian's
/// fonts-dejavu-core puts it; without it the curves are drawn and the text is left out.
/// </summary>
internal static class TrainingPlot
{
    private const string FontName = "DejaVu Sans";

    private static readonly string[] FontFiles =
    [
        "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
        "/usr/share/fonts/dejavu/DejaVuSans.ttf",
        "/usr/share/fonts/TTF/DejaVuSans.ttf",
    ];

    private static readonly Lazy<bool> s_font = new(() =>
    {
        string? file = FontFiles.FirstOrDefault(File.Exists);
        if (file is null) return false;
        ScottPlot.Fonts.AddFontFile(FontName, file);
        return true;
    });

    /// <summary>Whether a font was found (else the plot has no text).</summary>
    public static bool HasFont => s_font.Value;

    public static void Write(string path, IReadOnlyList<EpochRecord> history)
    {
        var plot = new ScottPlot.Plot();
        if (HasFont) plot.Font.Set(FontName);
        double[] epochs = [.. history.Select(h => (double)h.Epoch)];
        void Line(double[] ys, string label, bool right)
        {
            ScottPlot.Plottables.Scatter line = plot.Add.Scatter(epochs, ys);
            line.LegendText = label;
            if (right) line.Axes.YAxis = plot.Axes.Right;
        }
        Line([.. history.Select(h => h.Loss)], "training loss", right: false);
        Line([.. history.Select(h => h.ValLoss)], "validation loss", right: false);
        Line([.. history.Select(h => 100 * h.TrainTop1)], "training top-1 %", right: true);
        Line([.. history.Select(h => 100 * h.ValTop1)], "validation top-1 %", right: true);
        plot.Title("alexnet finetune");
        plot.XLabel("epoch");
        plot.YLabel("cross-entropy loss");
        plot.Axes.Right.Label.Text = "top-1 accuracy (%)";
        plot.ShowLegend(ScottPlot.Alignment.MiddleRight);
        byte[] png = plot.GetImageBytes(800, 500, ScottPlot.ImageFormat.Png);
        NpyWriter.WriteFile(path, stream => stream.Write(png));
    }
}
