using AlexNet.Cuda.Network;
using AlexNet.Cuda.Tests.Kernels;
using AlexNet.Cuda.Training;
using Xunit.Abstractions;

namespace AlexNet.Cuda.Tests.Training;

/// <summary>
/// Register and shared-memory use of the backward kernels (<see cref="ConvolutionBackward.Kernels"/>) as ptxas reports
/// it through NVRTC for sm_80 and sm_90, with the defines the class compiles them with (FP32): the same promises as
/// the forward kernels' (<see cref="KernelResourceTests"/>): no spills, no local memory, at least half of an SM's
/// threads resident at the launch block size.
/// </summary>
public class ConvolutionBackwardResourceTests(ITestOutputHelper output)
{
    public static TheoryData<string, int> KernelsAndArchitectures()
    {
        var data = new TheoryData<string, int>();
        foreach (NetworkKernelInfo kernel in ConvolutionBackward.Kernels)
        foreach (int arch in new[] { 80, 90 })
            data.Add(kernel.EntryPoint, arch);
        return data;
    }

    [SkippableTheory]
    [MemberData(nameof(KernelsAndArchitectures))]
    public void NoSpillsAndAtLeastHalfOccupancyAtTheLaunchBlockSize(string entryPoint, int architecture)
    {
        NetworkKernelInfo info = ConvolutionBackward.Kernels.Single(k => k.EntryPoint == entryPoint);
        KernelResourceTests.AssertNoSpillsAndHalfOccupancy(output, info, info.Defines, architecture, "fp32");
    }

    [Fact]
    public void EveryKernelFileOfTheClassIsEmbeddedAndNoEntryPointIsListedTwice()
    {
        IReadOnlyList<string> embedded = Compilation.KernelSource.EmbeddedKernelFiles();
        Assert.All(ConvolutionBackward.Kernels, k => Assert.Contains(k.File, embedded));
        Assert.Equal(ConvolutionBackward.Kernels.Count, ConvolutionBackward.Kernels.Select(k => k.EntryPoint).Distinct().Count());
        // Every entry point declared in the class's files is one it launches (none left untested here).
        foreach (string file in ConvolutionBackward.Kernels.Select(k => k.File).Distinct())
            Assert.Equal(ConvolutionBackward.Kernels.Where(k => k.File == file).Select(k => k.EntryPoint).Order(),
                Compilation.KernelSource.FromEmbedded(file).Signatures.Keys.Order());
    }
}
