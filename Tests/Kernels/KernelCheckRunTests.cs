using AlexNet.Cuda.Checks;
using AlexNet.Cuda.Devices;
using AlexNet.Cuda.Reference;

namespace AlexNet.Cuda.Tests.Kernels;

/// <summary>How <c>alexnet check</c> runs its list: a check that throws fails alone and the rest still run.</summary>
public class KernelCheckRunTests
{
    private static ComparisonResult Passing(ComputeDevice _) => Comparison.Exact([1f], [1f]);

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void AnUnexpectedExceptionFailsItsCheckAndTheNextStillRuns(bool stackTraces)
    {
        (string, Func<ComputeDevice, ComparisonResult>)[] checks =
        [
            ("a bug", _ => throw new InvalidOperationException("the handle was already closed")),
            ("a refusal", _ => throw new AlexNetException("Im2Col: pad must be 0 or more, not -1")),
            ("fine", Passing),
        ];
        CheckResult[] results = [.. KernelChecks.Run(null!, checks, stackTraces)];

        Assert.Equal(["a bug", "a refusal", "fine"], results.Select(r => r.Name));
        Assert.False(results[0].Passed);
        Assert.StartsWith("unexpected InvalidOperationException: the handle was already closed", results[0].Detail);
        Assert.Equal(stackTraces, results[0].Detail.Contains(nameof(AnUnexpectedExceptionFailsItsCheckAndTheNextStillRuns), StringComparison.Ordinal));
        Assert.False(results[1].Passed);
        Assert.Equal("Im2Col: pad must be 0 or more, not -1", results[1].Detail);
        Assert.True(results[2].Passed);
    }

    [Fact]
    public void RunningOutOfMemoryEndsTheRun()
    {
        (string, Func<ComputeDevice, ComparisonResult>)[] checks = [("huge", _ => throw new OutOfMemoryException()), ("fine", Passing)];
        Assert.Throws<OutOfMemoryException>(() => KernelChecks.Run(null!, checks, stackTraces: false).ToArray());
    }
}
