using AlexNet.Cuda.Checks;
using AlexNet.Cuda.Devices;
using AlexNet.Cuda.Network;
using AlexNet.Cuda.Reference;

namespace AlexNet.Cuda.Tests.Network;

/// <summary>
/// The graph cache's decisions, without a GPU: when it captures, replays, evicts and falls back, through a
/// recorder that records nothing (<see cref="FakeRecorder"/>); then the same through the model and the device
/// layer on a <see cref="RecordingDevice"/> that pretends to capture. On a GPU, <c>alexnet check --device cuda</c>
/// (Checks/GraphChecks.cs) compares a real replay with the stream pass bit for bit.
/// </summary>
public class ForwardGraphsTests
{
    private sealed class FakeRecorder : IGraphRecorder
    {
        public List<FakePass> Passes { get; } = [];

        /// <summary>Batch sizes whose capture fails with an <see cref="AlexNetException"/>.</summary>
        public HashSet<int> Refused { get; } = [];

        public int CurrentBatch { get; set; }

        public IRecordedPass Capture(Action queue)
        {
            queue();
            if (Refused.Contains(CurrentBatch))
                throw new AlexNetException($"cuStreamEndCapture(stream, out graph) failed: CUDA_ERROR_STREAM_CAPTURE_INVALIDATED (901) at batch {CurrentBatch}");
            var pass = new FakePass(CurrentBatch);
            Passes.Add(pass);
            return pass;
        }
    }

    private sealed class FakePass(int batch) : IRecordedPass
    {
        public int Batch { get; } = batch;

        public int Launches { get; private set; }

        public bool Disposed { get; private set; }

        public void Launch()
        {
            Assert.False(Disposed, "a destroyed graph was launched");
            Launches++;
        }

        public void Dispose() => Disposed = true;
    }

    /// <summary>A cache over <see cref="FakeRecorder"/> whose stream pass returns "batch b, pass k" (k counts the
    /// stream passes), so a result says which pass made it.</summary>
    private static (ForwardGraphs<string> Graphs, FakeRecorder Recorder, List<int> StreamPasses) Cache(int capacity = ForwardGraphs<string>.DefaultCapacity)
    {
        var recorder = new FakeRecorder();
        var streamPasses = new List<int>();
        var graphs = new ForwardGraphs<string>(recorder, batch =>
        {
            recorder.CurrentBatch = batch;
            streamPasses.Add(batch);
            return $"batch {batch}, pass {streamPasses.Count}";
        }, capacity);
        return (graphs, recorder, streamPasses);
    }

    [Fact]
    public void TheFirstPassAtASizeRunsLaunchByLaunchAndIsCapturedThenEveryLaterPassIsOneReplay()
    {
        (ForwardGraphs<string> graphs, FakeRecorder recorder, List<int> streamPasses) = Cache();
        // Pass 1 runs (its results are this call's), pass 2 is what the capture recorded.
        Assert.Equal("batch 4, pass 1", graphs.Run(4));
        Assert.Equal([4, 4], streamPasses);
        FakePass pass = Assert.Single(recorder.Passes);
        Assert.Equal(0, pass.Launches);
        Assert.True(graphs.HasGraph(4));
        // A replay reports what the captured pass produced, and queues nothing launch by launch.
        Assert.Equal("batch 4, pass 2", graphs.Run(4));
        Assert.Equal("batch 4, pass 2", graphs.Run(4));
        Assert.Equal(2, pass.Launches);
        Assert.Equal(2, streamPasses.Count);
        Assert.Equal((1, 2L), (graphs.Captures, graphs.Replays));
    }

    [Fact]
    public void EachBatchSizeHasAGraphOfItsOwn()
    {
        (ForwardGraphs<string> graphs, FakeRecorder recorder, _) = Cache();
        foreach (int batch in new[] { 1, 8, 1, 8, 8 }) graphs.Run(batch);
        Assert.Equal([1, 8], recorder.Passes.Select(p => p.Batch));
        Assert.Equal([1, 2], recorder.Passes.Select(p => p.Launches));
        Assert.Equal([8, 1], graphs.Captured);
        Assert.False(graphs.HasGraph(2));
    }

    [Fact]
    public void BeyondTheBoundTheLeastRecentlyUsedGraphIsDestroyed()
    {
        (ForwardGraphs<string> graphs, FakeRecorder recorder, _) = Cache(capacity: 2);
        graphs.Run(1);
        graphs.Run(2);
        graphs.Run(1); // a replay: 1 is now the more recently used
        graphs.Run(3); // a third size: 2 goes
        FakePass one = recorder.Passes[0], two = recorder.Passes[1], three = recorder.Passes[2];
        Assert.True(two.Disposed);
        Assert.False(one.Disposed || three.Disposed);
        Assert.Equal([3, 1], graphs.Captured);
        Assert.Equal(1, graphs.Evictions);
        // An evicted size is captured afresh on its next pass, and 1, now the least recently used, goes.
        graphs.Run(2);
        Assert.Equal(4, recorder.Passes.Count);
        Assert.True(one.Disposed);
        Assert.Equal([2, 3], graphs.Captured);
    }

    [Fact]
    public void AFailedCaptureRunsLaunchByLaunchKeepsItsReasonAndIsNeverTriedAgain()
    {
        (ForwardGraphs<string> graphs, FakeRecorder recorder, List<int> streamPasses) = Cache();
        recorder.Refused.Add(5);
        Assert.Equal("batch 5, pass 1", graphs.Run(5));
        Assert.Equal("batch 5, pass 3", graphs.Run(5)); // launch by launch again, no second capture
        Assert.Equal([5, 5, 5], streamPasses);
        Assert.Empty(recorder.Passes);
        Assert.False(graphs.HasGraph(5));
        string reason = Assert.Single(graphs.Failures).Value;
        Assert.Equal("cuStreamEndCapture(stream, out graph) failed: CUDA_ERROR_STREAM_CAPTURE_INVALIDATED (901) at batch 5", reason);
        // Other sizes are still captured.
        graphs.Run(6);
        Assert.True(graphs.HasGraph(6));
    }

    [Fact]
    public void ABugDuringTheCaptureIsNotTakenForARefusal()
    {
        int calls = 0;
        // The pass inside the capture (the second) throws: a bug, which must surface, not turn into a fallback.
        var graphs = new ForwardGraphs<int>(new FakeRecorder(), batch => ++calls == 2 ? throw new InvalidOperationException("a bug") : batch);
        Assert.Throws<InvalidOperationException>(() => graphs.Run(2));
        Assert.Empty(graphs.Failures);
    }

    [Fact]
    public void DisposingDestroysEveryGraphAndRefusesFurtherPasses()
    {
        (ForwardGraphs<string> graphs, FakeRecorder recorder, _) = Cache();
        graphs.Run(1);
        graphs.Run(2);
        graphs.Dispose();
        Assert.All(recorder.Passes, p => Assert.True(p.Disposed));
        Assert.Throws<ObjectDisposedException>(() => graphs.Run(1));
        graphs.Dispose();
    }

    // ---- the device layer's capture, on a device that pretends to capture ----

    [Fact]
    public void ACaptureThatThrowsIsEndedAndTheStreamIsNotLeftCapturing()
    {
        using var device = new RecordingDevice { CapturesGraphs = true };
        ComputeStream stream = device.DefaultStream;
        Assert.Throws<InvalidOperationException>(() => stream.Capture(() => throw new InvalidOperationException("queued badly")));
        Assert.Equal((1, 1), (device.CapturesBegun, device.CapturesAbandoned));
        Assert.False(stream.IsCapturing);
        using DeviceGraph graph = stream.Capture(() => { });
        Assert.Equal(2, device.CapturesBegun);
        Assert.Equal(1, device.CapturesAbandoned);
        graph.Launch(stream);
        Assert.Equal(1, device.GraphLaunches);
    }

    [Fact]
    public void AStreamThatCannotCaptureSaysWhyInOneLine()
    {
        using var device = new RecordingDevice();
        Assert.False(device.DefaultStream.SupportsGraphs);
        var e = Assert.Throws<AlexNetException>(() => device.DefaultStream.BeginCapture());
        Assert.Equal("recording device cannot capture its work into a graph", e.Message);
        Assert.Equal(e.Message, device.GraphsUnsupportedReason);
        Assert.False(device.DefaultStream.IsCapturing);
    }

    // ---- the model ----

    private static AlexNetModel Model(RecordingDevice device, bool? useGraphs, int maxBatch = 4) =>
        AlexNetModel.Create(device, SyntheticNetwork.Weights(SyntheticNetwork.Narrow, seed: 1),
            new AlexNetOptions { MaxBatch = maxBatch, UseGraphs = useGraphs });

    [Fact]
    public void TheModelReplaysTheCapturedPassAndQueuesNothingElse()
    {
        using var device = new RecordingDevice { CapturesGraphs = true };
        using AlexNetModel model = Model(device, useGraphs: null);
        Assert.True(model.UsesGraphs);
        Assert.Null(model.GraphsOffReason);
        model.Run(3);
        int gemmsPerPass = device.Gemms.Count / 2; // the pass that ran, and the one captured
        Assert.True(gemmsPerPass > 0);
        Assert.True(model.HasGraph(3));
        device.ReadProbabilities(model);
        nint probabilities = device.LastRead;

        device.Gemms.Clear();
        model.Run(3);
        Assert.Empty(device.Gemms);
        Assert.Equal(1, device.GraphLaunches);
        device.ReadProbabilities(model);
        Assert.Equal(probabilities, device.LastRead);
        Assert.Equal("on (a graph per batch size, at most 8): batch 3 captured, 1 replays", model.GraphStatus);

        // The stream pass on demand, and the passes that read layers out or are profiled, stay launch by launch.
        model.RunStream(3);
        Assert.Equal(gemmsPerPass, device.Gemms.Count);
        model.Features(new float[3 * AlexNetModel.InputFloatsPerImage], 3, ["fc8"]);
        Assert.Equal(2 * gemmsPerPass, device.Gemms.Count);
        Assert.Equal(1, device.GraphLaunches);
        // After them, a replay's results are read where the graph writes them.
        model.Run(3);
        device.ReadProbabilities(model);
        Assert.Equal(probabilities, device.LastRead);
    }

    [Fact]
    public void ReplaysAllocateAndSynchroniseNothing()
    {
        using var device = new RecordingDevice { CapturesGraphs = true };
        using AlexNetModel model = Model(device, useGraphs: true, maxBatch: 8);
        int[] batches = [1, 5, 8];
        foreach (int n in batches) model.Run(n); // captures
        foreach (int n in batches) model.Run(n); // warm: the JIT compiles the replay path
        int allocations = device.Allocations;
        device.Synchronizations = 0;
        long before = GC.GetAllocatedBytesForCurrentThread();
        foreach (int n in batches) model.Run(n);
        Assert.Equal(0, GC.GetAllocatedBytesForCurrentThread() - before);
        Assert.Equal(allocations, device.Allocations);
        Assert.Equal(0, device.Synchronizations);
        Assert.Equal(6, device.GraphLaunches);
    }

    [Fact]
    public void AModelWhoseCaptureFailsRunsLaunchByLaunchAndSaysWhy()
    {
        using var device = new RecordingDevice { CapturesGraphs = true, CaptureFailure = "cuGraphInstantiateWithFlags(out executable, graph, 0) failed: CUDA_ERROR_OUT_OF_MEMORY (2)" };
        using AlexNetModel model = Model(device, useGraphs: null);
        model.Run(2);
        device.Gemms.Clear();
        model.Run(2);
        Assert.NotEmpty(device.Gemms);
        Assert.Equal(0, device.GraphLaunches);
        Assert.Equal(1, device.CapturesBegun); // not tried again
        Assert.Equal("cuGraphInstantiateWithFlags(out executable, graph, 0) failed: CUDA_ERROR_OUT_OF_MEMORY (2)", model.GraphFailure(2));
        Assert.Equal("on (a graph per batch size, at most 8): no batch size captured yet, 0 replays; batch 2 runs launch by launch, " +
            "its capture failed: cuGraphInstantiateWithFlags(out executable, graph, 0) failed: CUDA_ERROR_OUT_OF_MEMORY (2)", model.GraphStatus);
    }

    [Fact]
    public void GraphsOffOrUnsupportedMeansTheStreamPassAndSaysWhy()
    {
        using var capturing = new RecordingDevice { CapturesGraphs = true };
        using (AlexNetModel off = Model(capturing, useGraphs: false))
        {
            off.Run(1);
            off.Run(1);
            Assert.Equal(0, capturing.CapturesBegun);
            Assert.False(off.UsesGraphs);
            Assert.Equal("off: UseGraphs = false: the stream path runs", off.GraphStatus);
        }
        using var plain = new RecordingDevice();
        using (AlexNetModel unsupported = Model(plain, useGraphs: null))
        {
            unsupported.Run(1);
            Assert.Equal("off: recording device cannot capture its work into a graph: the stream path runs", unsupported.GraphStatus);
        }
        var e = Assert.Throws<AlexNetException>(() => Model(plain, useGraphs: true));
        Assert.Equal("graphs were asked for (UseGraphs = true), but recording device cannot capture its work into a graph", e.Message);
        Assert.Equal(0, plain.LiveResources);
    }

    // ---- the check that alexnet check runs on a GPU, driven here through its graph branch ----

    [Fact]
    public void TheGraphCheckCapturesEachSizeOnceAndComparesAReplayAtEachStep()
    {
        // The recording device computes nothing, so the comparison itself is trivial here: what this shows is
        // the sequence (capture at a size's first pass, replays after, a size seen before replayed at once).
        using var device = new RecordingDevice { CapturesGraphs = true };
        ComparisonResult result = GraphChecks.ReplayMatchesTheStreamPass(device, SyntheticNetwork.Narrow, [3, 1, 3], new AlexNetOptions { MaxBatch = 3 });
        Assert.True(result.Passed, result.Detail);
        Assert.Equal(2, device.CapturesBegun);
        Assert.Equal(3, device.GraphLaunches);
        Assert.StartsWith("batch 3, 1, 3 again: the replayed graph's fc8 and probabilities bit-identical to RunStream's (", result.Detail);
        Assert.EndsWith("; graphs on (a graph per batch size, at most 8): batch 1, 3 captured, 3 replays", result.Detail);
    }

    [Fact]
    public void TheGraphCheckFailsWithTheReasonWhenACaptureFails()
    {
        using var device = new RecordingDevice { CapturesGraphs = true, CaptureFailure = "cuStreamEndCapture(stream, out graph) failed: CUDA_ERROR_STREAM_CAPTURE_INVALIDATED (901)" };
        ComparisonResult result = GraphChecks.ReplayMatchesTheStreamPass(device, SyntheticNetwork.Narrow, [3, 1], new AlexNetOptions { MaxBatch = 3 });
        Assert.False(result.Passed);
        Assert.Equal("batch 3 was not captured: cuStreamEndCapture(stream, out graph) failed: CUDA_ERROR_STREAM_CAPTURE_INVALIDATED (901)", result.Detail);
    }

    [Fact]
    public void DisposingTheModelDestroysItsGraphs()
    {
        using var device = new RecordingDevice { CapturesGraphs = true };
        AlexNetModel model = Model(device, useGraphs: null);
        model.Run(1);
        model.Run(2);
        model.Dispose();
        Assert.Equal(2, device.GraphsReleased);
        Assert.Equal(0, device.LiveResources);
    }
}

internal static class RecordingDeviceModelExtensions
{
    /// <summary>Reads the probabilities of the model's last pass, so <see cref="RecordingDevice.LastRead"/> says
    /// from which buffer.</summary>
    public static void ReadProbabilities(this RecordingDevice device, AlexNetModel model) =>
        model.ReadProbabilities(new float[model.MaxBatch * model.NumClasses]);
}
