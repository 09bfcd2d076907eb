using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using System.IO.Hashing;
using System.Text;
using System.Text.Encodings.Web;
using System.Text.Json;
using AlexNet.Cuda;
using AlexNet.Cuda.Devices;
using AlexNet.Cuda.Export;
using AlexNet.Cuda.Labels;
using AlexNet.Cuda.Network;
using AlexNet.Cuda.Training;
using AlexNet.Cuda.Weights;

namespace AlexNet.Cli.Finetune;

/// <summary>
/// <c>alexnet finetune --weights bvlc_alexnet.npy --train SRC --val SRC --out model.npy</c>: the recipe of the
/// TensorFlow fine-tuning code this engine follows (kratzert/finetune_alexnet_with_tensorflow): the layers named by
/// <c>--train-layers</c> (its skip_layer) start afresh (Glorot-uniform weights, zero biases, from the seed) and are
/// trained with softmax cross-entropy and SGD with momentum, dropout on fc6 and fc7 (keep_prob), the others loaded
/// and frozen. The frozen part's output (the lowest trained layer's input: pool5 when only fc layers train) is
/// computed once per image (and per mirror image with <c>--flip</c>) and kept (<see cref="FeatureStore"/>), so an
/// epoch costs only the trained part (<see cref="NetworkTrainer"/>). Each epoch: a progress line on a terminal, one line on stdout, one JSON line
/// in <c>--log</c>, and a checkpoint (<c>model.npy</c> in bvlc_alexnet.npy's own format, <c>model.labels.txt</c>,
/// <c>model.state.npz</c>); Ctrl+C writes one at the step it stopped at, and <c>--resume</c> continues from it to the
/// same weights as a run never stopped. See docs/finetune.md.
/// </summary>
internal static class FinetuneCommand
{
    /// <summary>Images per pass of the frozen part (the kept features): the forward pass's own batch, not the training one.</summary>
    public const int FeatureBatch = 32;

    /// <summary>Called after every training step with the run's interruption, the epoch and the step: tests stop a run
    /// there as Ctrl+C would.</summary>
    internal static Action<Interruption, int, int>? AfterStepForTests { get; set; }

    public static Command Create()
    {
        var weights = new Option<string>("--weights") { Description = "The pretrained weight file (bvlc_alexnet.npy or an .npz)", HelpName = "FILE", Required = true };
        var train = new Option<string>("--train")
        {
            Description = "Training images: a folder with one sub-folder per class (sorted names are the classes), or a text file of 'path label' lines",
            HelpName = "SRC",
            Required = true,
        };
        var val = new Option<string>("--val") { Description = "Validation images, as --train gives them (the same classes)", HelpName = "SRC", Required = true };
        Option<IReadOnlyList<string>?> trainLayers = CliOptions.NameList("--train-layers", "NAME[,NAME]",
            "Layers initialised afresh and trained (the others are loaded and frozen); the default is fc6,fc7,fc8", "layer names", AlexNetArchitecture.LayerNames);
        Option<int?> numClasses = CliOptions.Typed<int?>("--num-classes", "auto|N", "Classes of the new fc8: auto (the default) is the training set's",
            (string text, out int? value) =>
            {
                value = null;
                if (text == "auto") return true;
                bool ok = int.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out int n) && n > 0;
                value = ok ? n : null;
                return ok;
            }, "auto or a positive whole number", null);
        Option<float> keepProb = CliOptions.FiniteFloat("--keep-prob", "Dropout's keep probability on fc6 and fc7 while training (1: no dropout)", 0.5f,
            p => p > 0 && p <= 1, "a number in (0, 1]");
        Option<int> epochs = CliOptions.PositiveInt("--epochs", "Epochs to train (with --resume: in all, counting those done)", 10);
        Option<int> batch = CliOptions.PositiveInt("--batch", "Images per training step", 128);
        Option<float> lr = CliOptions.FiniteFloat("--lr", "Learning rate", 0.01f, x => x > 0, "a number above 0");
        Option<float> momentum = CliOptions.FiniteFloat("--momentum", "Momentum (0: plain SGD, as the TensorFlow code)", 0.9f, x => x >= 0 && x < 1, "a number in [0, 1)");
        Option<float> weightDecay = CliOptions.FiniteFloat("--weight-decay", "L2 weight decay on the weights (not the biases)", 5e-4f, x => x >= 0, "a number of 0 or more");
        Option<LearningRateSchedule> schedule = CliOptions.Typed("--lr-schedule", "constant|step:E:F",
            "Learning-rate schedule: constant, or step:E:F to multiply the rate by F every E epochs", LearningRateSchedule.TryParse,
            "constant or step:E:F (as step:5:0.1)", LearningRateSchedule.Constant);
        var flip = new Option<bool>("--flip") { Description = "Mirror each training image left to right at random, per epoch" };
        Option<ulong> seed = CliOptions.UnsignedLong("--seed", "Seed of the new layers' initialisation, the shuffle, the flips and dropout: the same seed gives the same model", 1);
        Option<DeviceChoice?> device = CliOptions.Device();
        var output = new Option<string>("--out") { Description = "The fine-tuned weight file (bvlc_alexnet.npy's format); its labels and optimiser state go beside it", HelpName = "FILE", Required = true };
        var log = new Option<string?>("--log") { Description = "Write one JSON line per epoch to this file", HelpName = "FILE" };
        var plot = new Option<string?>("--plot") { Description = "Draw the loss and accuracy curves to this PNG after every epoch", HelpName = "FILE.png" };
        var resume = new Option<bool>("--resume") { Description = "Continue the run whose checkpoint --out is (its weights, momentum, epoch and step)" };
        Option<ByteSize> featureMemory = CliOptions.ByteSizeOption("--feature-memory",
            "Memory for the kept features of the frozen part (pool5: 36 KiB an image); beyond it they go to a temporary file beside --out", new ByteSize(4L << 30));
        var images = new ImageInputOptions();
        var command = new Command("finetune", "Train chosen layers (by default fc6, fc7, fc8) on a labelled image set, starting from a weight file")
        {
            weights, train, val, trainLayers, numClasses, keepProb, epochs, batch, lr, momentum, weightDecay, schedule, flip, seed, device, output, log, plot,
            resume, featureMemory,
        };
        images.AddOptionsTo(command);
        command.SetAction(result =>
        {
            var settings = new FinetuneSettings(result.GetRequiredValue(weights), result.GetRequiredValue(train), result.GetRequiredValue(val),
                [.. result.GetValue(trainLayers) ?? ["fc6", "fc7", "fc8"]], result.GetValue(numClasses), result.GetValue(keepProb), result.GetValue(epochs),
                result.GetValue(batch), result.GetValue(lr), result.GetValue(momentum), result.GetValue(weightDecay), result.GetValue(schedule),
                result.GetValue(flip), result.GetValue(seed), result.GetDevice(device), result.GetRequiredValue(output), result.GetValue(log),
                result.GetValue(plot), result.GetValue(resume), result.GetValue(featureMemory).Bytes, images.ReadOptions(result), Program.IsVerbose(result));
            using Interruption interruption = Interruption.Listen();
            var run = new FinetuneRun(settings, result.InvocationConfiguration.Output, result.InvocationConfiguration.Error, interruption)
            {
                AfterStep = AfterStepForTests is { } hook ? (epoch, step) => hook(interruption, epoch, step) : null,
            };
            return run.Run();
        });
        return command;
    }
}

/// <summary>What <c>finetune</c>'s command line asked for.</summary>
internal sealed record FinetuneSettings(string Weights, string Train, string Val, IReadOnlyList<string> TrainLayers, int? NumClasses,
    float KeepProbability, int Epochs, int Batch, float LearningRate, float Momentum, float WeightDecay, LearningRateSchedule Schedule, bool Flip,
    ulong Seed, DeviceChoice Device, string Out, string? Log, string? Plot, bool Resume, long FeatureMemoryBytes, ImageInputSettings Images, bool Verbose);

/// <summary>One epoch's numbers: the training loss is the mean over the epoch's steps (with dropout); the accuracies
/// are measured afterwards without dropout, on the unmirrored images.</summary>
internal sealed record EpochRecord(int Epoch, double Loss, double TrainTop1, double TrainTop5, double ValLoss, double ValTop1, double ValTop5,
    double ImagesPerSecond, float LearningRate, double Seconds)
{
    public string ToJson()
    {
        var buffer = new MemoryStream();
        using (var j = new Utf8JsonWriter(buffer, new JsonWriterOptions { Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping }))
        {
            j.WriteStartObject();
            j.WriteNumber("epoch", Epoch);
            j.WriteNumber("loss", Loss);
            j.WriteNumber("train_top1", TrainTop1);
            j.WriteNumber("train_top5", TrainTop5);
            j.WriteNumber("val_loss", ValLoss);
            j.WriteNumber("val_top1", ValTop1);
            j.WriteNumber("val_top5", ValTop5);
            j.WriteNumber("images_per_second", Math.Round(ImagesPerSecond, 2));
            j.WriteNumber("learning_rate", LearningRate);
            j.WriteNumber("seconds", Math.Round(Seconds, 3));
            j.WriteEndObject();
        }
        return Encoding.UTF8.GetString(buffer.ToArray());
    }

    public static EpochRecord FromJson(string line)
    {
        using JsonDocument doc = JsonDocument.Parse(line);
        JsonElement r = doc.RootElement;
        return new EpochRecord(r.GetProperty("epoch").GetInt32(), r.GetProperty("loss").GetDouble(), r.GetProperty("train_top1").GetDouble(),
            r.GetProperty("train_top5").GetDouble(), r.GetProperty("val_loss").GetDouble(), r.GetProperty("val_top1").GetDouble(),
            r.GetProperty("val_top5").GetDouble(), r.GetProperty("images_per_second").GetDouble(), r.GetProperty("learning_rate").GetSingle(),
            r.GetProperty("seconds").GetDouble());
    }
}

/// <summary>One run of <c>finetune</c>, from the command line's settings to the last checkpoint.</summary>
internal sealed class FinetuneRun(FinetuneSettings s, TextWriter stdout, TextWriter stderr, Interruption interruption)
{
    /// <summary>Called after every training step with (epoch, step) — tests stop a run there.</summary>
    internal Action<int, int>? AfterStep { get; init; }

    public int Run()
    {
        if (s.Plot is string plotPath && !plotPath.EndsWith(".png", StringComparison.OrdinalIgnoreCase))
            throw new AlexNetException($"--plot writes a PNG: give a path ending in .png, not {plotPath}");

        LabelledImageSet trainSet = LabelledImageSet.Open(s.Train);
        LabelledImageSet valSet = LabelledImageSet.Open(s.Val, trainSet.ClassNames);
        int classes = s.NumClasses ?? trainSet.ClassNames.Count;
        if (classes < trainSet.ClassNames.Count)
            throw new AlexNetException($"--num-classes {classes} is fewer than the {trainSet.ClassNames.Count} classes of {s.Train}");
        IReadOnlyList<string> classNames = [.. trainSet.ClassNames, .. Enumerable.Range(trainSet.ClassNames.Count, classes - trainSet.ClassNames.Count).Select(i => $"class {i}")];

        // Every output is checked before anything is loaded: a missing or read-only folder costs nothing.
        string statePath = TrainingState.PathFor(s.Out);
        NpyWriter.CheckWritable(s.Out);
        NpyWriter.CheckWritable(statePath);
        NpyWriter.CheckWritable(ClassLabels.BesidePath(s.Out));
        if (s.Log is not null) NpyWriter.CheckWritable(s.Log);
        if (s.Plot is not null) NpyWriter.CheckWritable(s.Plot);

        string fingerprint = Fingerprint(trainSet, valSet, classes);
        TrainingState? resumed = null;
        AlexNetWeights weights;
        if (s.Resume)
        {
            resumed = TrainingState.Read(statePath);
            if (!File.Exists(s.Out)) throw new AlexNetException($"--resume: the checkpoint {s.Out} is missing beside its state {statePath}");
            if (TrainingState.HashOf(s.Out) != resumed.WeightsHash)
                throw new AlexNetException($"--resume: {s.Out} is not the weight file {statePath} was written with (was the run stopped while writing its checkpoint?); start afresh");
            if (resumed.Fingerprint != fingerprint)
                throw new AlexNetException($"--resume: {s.Out} was trained on other data or settings (--train, --val, --train-layers, --num-classes, --keep-prob, --batch, --lr, --momentum, --weight-decay, --lr-schedule, --flip, --seed and the preprocessing must be as before)");
            weights = WeightFile.Load(s.Out, new WeightLoadOptions { NumClasses = classes });
        }
        else
        {
            weights = WeightFile.Load(s.Weights, new WeightLoadOptions { NumClasses = classes, SkipLayers = [.. s.TrainLayers], Seed = s.Seed });
        }

        using SelectedDevice selected = DeviceSelector.Open(s.Device);
        ComputeDevice device = selected.Device;
        stdout.WriteLine($"device: {device.Description} ({selected.Reason})");
        stdout.WriteLine(FormattableString.Invariant(
            $"finetune: {trainSet.Images.Count} training and {valSet.Images.Count} validation images, {classes} classes; training {string.Join(",", s.TrainLayers)}; keep_prob {s.KeepProbability}, batch {s.Batch}, lr {s.LearningRate} ({s.Schedule}), momentum {s.Momentum}, weight decay {s.WeightDecay}{(s.Flip ? ", flips" : "")}, seed {s.Seed}"));

        string spillFolder = Path.GetDirectoryName(Path.GetFullPath(s.Out))!;
        // The trained part starts at the lowest trained layer's input; what is below it is computed once per image.
        using var trainer = new NetworkTrainer(device, weights, s.TrainLayers, Math.Min(s.Batch, trainSet.Images.Count), s.KeepProbability);
        string inputLayer = trainer.InputLayer;
        using var store = new FeatureStore(trainer.InputFloats, s.FeatureMemoryBytes, spillFolder);
        int[] trainKeys, valKeys;
        int[] trainLabels, valLabels;
        {
            var clock = Stopwatch.StartNew();
            using AlexNetModel? model = inputLayer == "input" ? null : AlexNetModel.Create(device, weights, new AlexNetOptions { MaxBatch = FinetuneCommand.FeatureBatch });
            using ImageInput input = s.Images.Open(s.Verbose ? (file, e) => stderr.WriteLine($"{Program.Name}: {file}: {e}") : null);
            (trainKeys, trainLabels) = Extract(model, inputLayer, input, trainSet, store, keyBase: 0, flips: s.Flip, "training");
            (valKeys, valLabels) = Extract(model, inputLayer, input, valSet, store, keyBase: 1 << 29, flips: false, "validation");
            double seconds = clock.Elapsed.TotalSeconds;
            int passes = trainKeys.Length * (s.Flip ? 2 : 1) + valKeys.Length;
            stdout.WriteLine(FormattableString.Invariant(
                $"features: {inputLayer} of {passes} images in {seconds:F1} s ({passes / seconds:F1} images/s), kept in {store.MemoryBytes / 1048576.0:F0} MiB{(store.Spilled > 0 ? $" and a file ({store.Spilled} images)" : "")}"));
        }
        if (trainKeys.Length == 0) throw new AlexNetException($"none of the training images of {s.Train} could be used");
        if (valKeys.Length == 0) throw new AlexNetException($"none of the validation images of {s.Val} could be used");

        int batch = Math.Min(s.Batch, trainKeys.Length);
        var history = new List<EpochRecord>();
        int startEpoch = 0, startStep = 0;
        double lossSum = 0;
        long lossImages = 0;
        if (resumed is not null)
        {
            trainer.ImportVelocity(resumed.Velocity);
            history.AddRange(resumed.History.Select(EpochRecord.FromJson));
            (startEpoch, startStep, lossSum, lossImages) = (resumed.EpochsDone, resumed.StepsDone, resumed.EpochLossSum, resumed.EpochImages);
            stdout.WriteLine($"resumed: {startEpoch} epochs and {startStep} steps done");
        }

        int floats = trainer.InputFloats;
        var features = new float[(long)trainer.MaxBatch * floats];
        var labels = new int[trainer.MaxBatch];
        var losses = new float[trainer.MaxBatch];
        int steps = (trainKeys.Length + batch - 1) / batch;
        ProgressLine? progress = ProgressLine.For(stderr);
        for (int epoch = startEpoch; epoch < s.Epochs; epoch++)
        {
            float rate = s.Schedule.Rate(s.LearningRate, epoch);
            var sgd = new SgdStep(rate, s.Momentum, s.WeightDecay);
            int[] order = TrainingRandom.Permutation(trainKeys.Length, s.Seed, epoch);
            var clock = Stopwatch.StartNew();
            long imagesThisRun = 0;
            for (int step = epoch == startEpoch ? startStep : 0; step < steps; step++)
            {
                int first = step * batch, n = Math.Min(batch, trainKeys.Length - first);
                for (int i = 0; i < n; i++)
                {
                    int image = order[first + i];
                    bool mirrored = s.Flip && TrainingRandom.Flip(s.Seed, epoch, image);
                    store.Read(trainKeys[image] + (mirrored ? 1 : 0), features.AsSpan(i * floats, floats));
                    labels[i] = trainLabels[image];
                }
                double mean = trainer.Step(features, labels, n, sgd, TrainingRandom.DropoutSeed(s.Seed, epoch, step), losses);
                // A loss that is no longer a number will not come back: stop before a checkpoint is overwritten with it.
                if (!double.IsFinite(mean))
                    throw new AlexNetException(FormattableString.Invariant(
                        $"the training diverged in epoch {epoch + 1}, step {step + 1}: the loss is {mean} (the last checkpoint is kept); lower --lr (now {rate}) or --momentum"));
                lossSum += mean * n;
                lossImages += n;
                imagesThisRun += n;
                progress?.Show(FormattableString.Invariant(
                    $"epoch {epoch + 1}/{s.Epochs} step {step + 1}/{steps}: {imagesThisRun / clock.Elapsed.TotalSeconds:F1} images/s, loss {lossSum / lossImages:F4}"));
                AfterStep?.Invoke(epoch, step);
                if (interruption.IsRequested)
                {
                    progress?.Clear();
                    Checkpoint(trainer, classNames, statePath, fingerprint, history, epoch, step + 1, lossSum, lossImages);
                    interruption.ThrowIfRequested(FormattableString.Invariant(
                        $"during epoch {epoch + 1}, after step {step + 1} of {steps}; the checkpoint {s.Out} holds it (continue with --resume)"));
                }
            }
            double trainSeconds = clock.Elapsed.TotalSeconds;
            progress?.Clear();
            (double _, double trainTop1, double trainTop5) = Evaluate(trainer, store, trainKeys, trainLabels, features);
            (double valLoss, double valTop1, double valTop5) = Evaluate(trainer, store, valKeys, valLabels, features);
            var record = new EpochRecord(epoch + 1, lossSum / lossImages, trainTop1, trainTop5, valLoss, valTop1, valTop5,
                imagesThisRun / trainSeconds, rate, trainSeconds);
            history.Add(record);
            stdout.WriteLine(FormattableString.Invariant(
                $"epoch {record.Epoch}/{s.Epochs}: loss {record.Loss:F4}, train top-1 {100 * trainTop1:F1}% top-5 {100 * trainTop5:F1}%, val loss {valLoss:F4} top-1 {100 * valTop1:F1}% top-5 {100 * valTop5:F1}%, {record.ImagesPerSecond:F1} images/s, lr {rate}"));
            (lossSum, lossImages) = (0, 0);
            Checkpoint(trainer, classNames, statePath, fingerprint, history, epoch + 1, 0, 0, 0);
            if (s.Log is string logPath) NpyWriter.WriteText(logPath, string.Concat(history.Select(h => h.ToJson() + "\n")));
            if (s.Plot is string plot) TrainingPlot.Write(plot, history);
            interruption.ThrowIfRequested(() => $"after epoch {epoch + 1}; the checkpoint {s.Out} holds it (continue with --resume)");
        }
        stdout.WriteLine($"model: {s.Out} ({classes} classes; labels {ClassLabels.BesidePath(s.Out)}, optimiser state {statePath})");
        return 0;
    }

    /// <summary>
    /// <paramref name="layer"/> (the frozen part's output, or the preprocessed image for "input") of every usable image of
    /// <paramref name="set"/> (and of its mirror image with <paramref name="flips"/>)
    /// into the store under keys <c>keyBase + 2·i</c> (+1 mirrored). A bad image is named on stderr and left out:
    /// it costs that image, not the run. Returns the keys and labels of the images kept.
    /// </summary>
    private (int[] Keys, int[] Labels) Extract(AlexNetModel? model, string layer, ImageInput input, LabelledImageSet set, FeatureStore store, int keyBase, bool flips, string what)
    {
        const int F = AlexNetModel.InputFloatsPerImage;
        IReadOnlyList<string> paths = [.. set.Images.Select(i => i.Path)];
        var batchInput = new float[(long)FinetuneCommand.FeatureBatch * F];
        var errors = new string?[FinetuneCommand.FeatureBatch];
        var keys = new List<int>();
        var labels = new List<int>();
        int bad = 0;
        string[] layers = [layer];
        for (int first = 0; first < paths.Count; first += FinetuneCommand.FeatureBatch)
        {
            int n = Math.Min(FinetuneCommand.FeatureBatch, paths.Count - first);
            interruption.ThrowIfRequested(() => $"while computing the {what} images' {layer} features ({first} of {paths.Count}); nothing was written");
            input.Loader.Load(paths, first, n, i => batchInput.AsSpan(i * F, F), errors);
            for (int mirror = 0; mirror < (flips ? 2 : 1); mirror++)
            {
                if (mirror == 1)
                    for (int i = 0; i < n; i++) MirrorImage(batchInput.AsSpan(i * F, F));
                // conv1 trains from the preprocessed image itself; otherwise the frozen part's output is kept.
                float[] kept = model is null ? batchInput : model.Features(batchInput.AsSpan(0, n * F), n, layers)[layer];
                int per = model is null ? F : kept.Length / n;
                for (int i = 0; i < n; i++)
                    if (errors[i] is null) store.Add(keyBase + 2 * (first + i) + mirror, kept.AsSpan(i * per, per));
            }
            for (int i = 0; i < n; i++)
            {
                if (errors[i] is string error)
                {
                    stderr.WriteLine($"{Program.Name}: {error} (left out of the {what} set)");
                    bad++;
                    continue;
                }
                keys.Add(keyBase + 2 * (first + i));
                labels.Add(set.Images[first + i].Label);
            }
        }
        if (bad > 0) stderr.WriteLine($"{Program.Name}: {bad} of {paths.Count} {what} images could not be used and were left out");
        return ([.. keys], [.. labels]);
    }

    /// <summary>Mirrors one preprocessed image (227×227, HWC) left to right, in place.</summary>
    internal static void MirrorImage(Span<float> image)
    {
        const int S = AlexNetModel.InputSize, C = AlexNetModel.InputChannels;
        for (int y = 0; y < S; y++)
        {
            Span<float> row = image.Slice(y * S * C, S * C);
            for (int x = 0; x < S / 2; x++)
            for (int c = 0; c < C; c++)
                (row[x * C + c], row[(S - 1 - x) * C + c]) = (row[(S - 1 - x) * C + c], row[x * C + c]);
        }
    }

    /// <summary>Mean cross-entropy, top-1 and top-5 accuracy, without dropout, over the given images.</summary>
    private static (double Loss, double Top1, double Top5) Evaluate(NetworkTrainer head, FeatureStore store, int[] keys, int[] labels, float[] features)
    {
        int floats = head.InputFloats, classes = head.NumClasses;
        var logits = new float[head.MaxBatch * classes];
        double loss = 0;
        int top1 = 0, top5 = 0;
        for (int first = 0; first < keys.Length; first += head.MaxBatch)
        {
            int n = Math.Min(head.MaxBatch, keys.Length - first);
            for (int i = 0; i < n; i++) store.Read(keys[first + i], features.AsSpan(i * floats, floats));
            head.Evaluate(features, n, logits);
            for (int i = 0; i < n; i++)
            {
                ReadOnlySpan<float> row = logits.AsSpan(i * classes, classes);
                int label = labels[first + i];
                (double l, int rank) = CrossEntropyAndRank(row, label);
                loss += l;
                if (rank < 1) top1++;
                if (rank < 5) top5++;
            }
        }
        return (loss / keys.Length, (double)top1 / keys.Length, (double)top5 / keys.Length);
    }

    /// <summary>−log softmax(row)[label] in double, and the label's rank: the classes ranked above it (a higher logit,
    /// or an equal one at a lower index). A NaN logit ranks the label last.</summary>
    internal static (double Loss, int Rank) CrossEntropyAndRank(ReadOnlySpan<float> row, int label)
    {
        double max = double.NegativeInfinity;
        foreach (float v in row) max = Math.Max(max, v);
        double sum = 0;
        foreach (float v in row) sum += Math.Exp(v - max);
        double loss = Math.Log(sum) + max - row[label];
        float mine = row[label];
        int rank = 0;
        for (int c = 0; c < row.Length; c++)
            if (c != label && (row[c] > mine || (row[c] == mine && c < label) || float.IsNaN(row[c]) || float.IsNaN(mine))) rank++;
        return (double.IsNaN(loss) ? double.PositiveInfinity : loss, rank);
    }

    private void Checkpoint(NetworkTrainer head, IReadOnlyList<string> classNames, string statePath, string fingerprint,
        List<EpochRecord> history, int epochsDone, int stepsDone, double lossSum, long lossImages)
    {
        WeightFileWriter.Write(s.Out, head.ExportWeights());
        ClassLabels.WriteBeside(s.Out, classNames);
        new TrainingState(epochsDone, stepsDone, lossSum, lossImages, fingerprint, TrainingState.HashOf(s.Out),
            [.. history.Select(h => h.ToJson())], head.ExportVelocity()).Write(statePath);
    }

    /// <summary>What a resumed run must share with the run it continues: the images and labels, the classes, and every
    /// setting that changes a step (not --epochs, which a resumed run may raise).</summary>
    private string Fingerprint(LabelledImageSet train, LabelledImageSet val, int classes)
    {
        var text = new StringBuilder();
        foreach (LabelledImageSet set in new[] { train, val })
        {
            text.Append("set\n");
            foreach (LabelledImage image in set.Images) text.Append(Path.GetFullPath(image.Path)).Append('\t').Append(image.Label).Append('\n');
        }
        text.Append(string.Join(",", train.ClassNames)).Append('\n');
        text.Append(CultureInfo.InvariantCulture, $"{classes} {string.Join(",", s.TrainLayers.Order(StringComparer.Ordinal))} {s.KeepProbability:R} {s.Batch} {s.LearningRate:R} {s.Momentum:R} {s.WeightDecay:R} {s.Schedule} {s.Flip} {s.Seed}\n");
        text.Append(CultureInfo.InvariantCulture, $"{s.Images.Resize} {string.Join(",", s.Images.MeanBgr.Select(m => m.ToString("R", CultureInfo.InvariantCulture)))} {s.Images.Decoder} {s.Images.FastDecode}\n");
        return Convert.ToHexStringLower(XxHash128.Hash(Encoding.UTF8.GetBytes(text.ToString())));
    }
}
