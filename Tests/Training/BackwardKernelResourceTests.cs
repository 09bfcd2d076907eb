using AlexNet.Cuda.Interop;
using AlexNet.Cuda.Network;
using AlexNet.Cuda.Tests.Infrastructure;
using AlexNet.Cuda.Tests.Kernels;
using AlexNet.Cuda.Training;
using Xunit.Abstractions;

namespace AlexNet.Cuda.Tests.Training;

/// <summary>
/// Register and shared-memory use of the backward kernels (<see cref="BackwardKernels.Kernels"/>) as ptxas reports
/// it through NVRTC for sm_80 and sm_90, with the defines they are launched with: the same bar as the forward
/// kernels' (<see cref="KernelResourceTests"/>): no spills, no stack frame, at least half of an SM's threads
/// resident at the launch block size. FP32 only: the training kernels take no activation-format define.
/// </summary>
public class BackwardKernelResourceTests(ITestOutputHelper output)
{
    public static TheoryData<string, int> KernelsAndArchitectures()
    {
        var data = new TheoryData<string, int>();
        foreach (NetworkKernelInfo kernel in BackwardKernels.Kernels)
        foreach (int arch in new[] { 80, 90 })
            data.Add(kernel.EntryPoint, arch);
        return data;
    }

    [SkippableTheory]
    [MemberData(nameof(KernelsAndArchitectures))]
    public void NoSpillsAndAtLeastHalfOccupancyAtTheLaunchBlockSize(string entryPoint, int architecture)
    {
        TestNative.Require(NativeLibraryId.Nvrtc);
        NetworkKernelInfo info = BackwardKernels.Kernels.Single(k => k.EntryPoint == entryPoint);
        KernelResourceTests.AssertNoSpillsAndHalfOccupancy(output, info, info.Defines, architecture, "fp32");
    }
}
