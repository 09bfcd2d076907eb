using System.Text;
using AlexNet.Cuda.Weights;

namespace AlexNet.Cuda.Tests.Weights;

/// <summary>Hostile weight files through <c>alexnet weights</c>: an ordinary refusal (exit code 1, one line),
/// never an internal error (70).</summary>
public class WeightsCliHardeningTests
{
    /// <summary>Runs the command as <c>Main</c> does and returns its exit code (an <see cref="AlexNetException"/>
    /// is 1, anything else 70) with what it wrote to stderr.</summary>
    private static (int Code, string Message) Run(params string[] args)
    {
        var stderr = new StringWriter();
        int code = AlexNet.Cli.Program.Run(["weights", .. args], new StringWriter(), stderr);
        return (code, stderr.ToString().TrimEnd('\n'));
    }

    [Fact]
    public void LayerDictWithAHugeByteStringKeyExitsWith1()
    {
        // Full-size shapes, as the command checks against BVLC AlexNet; conv1 as {'weights', 'biases', <70,000-byte key>: None}.
        var layers = TinyNet.Layers(AlexNetArchitecture.Default);
        layers[0] = layers[0] with { AsDict = true, DictExtras = [(Encoding.ASCII.GetBytes(new string('k', 70_000)), null)] };
        using var dir = new TempDir();
        string path = dir.File("bvlc_alexnet.npy");
        Py2PickleWriter.WriteFile(path, layers);
        var (code, message) = Run(path);
        Assert.True(code == 1, message);
        Assert.Contains("70000-byte", message);
        Assert.DoesNotContain('\n', message);
    }

    [Fact]
    public void ArchiveDeclaringGigabytesExitsWith1WithoutInflating()
    {
        using var dir = new TempDir();
        string path = dir.File("bomb.npz");
        NpzHardeningTests.WriteBomb(path, "conv1_W.npy", 500_000_000);
        long before = GC.GetAllocatedBytesForCurrentThread();
        var (code, message) = Run(path, "--format", "json");
        long allocated = GC.GetAllocatedBytesForCurrentThread() - before;
        Assert.True(code == 1, message);
        Assert.Contains("conv1", message);
        Assert.True(allocated < 16 << 20, $"allocated {allocated:N0} bytes");
    }
}
