using AlexNet.Cuda.Devices;
using AlexNet.Cuda.Network;
using AlexNet.Cuda.Reference;

namespace AlexNet.Cuda.Checks;

/// <summary>
/// Uploads on a copy stream overlapped with the passes, as <c>alexnet classify</c> runs them on a GPU: each batch
/// is uploaded from pinned memory on a second stream into one of two device input buffers, the compute stream
/// waits for the upload's event, and the copy stream waits, before refilling a buffer, for the event the pass
/// recorded once it had read it (<see cref="AlexNetModel.Run(int, DeviceBuffer{float}, DeviceEvent?)"/>). Four
/// batches, all queued before any is waited for, must give each batch's probabilities bit for bit as a pass
/// over that batch alone does: a missing wait shows as another batch's images. Part of <see cref="KernelChecks.All"/>.
/// </summary>
public static class OverlapChecks
{
    public static IEnumerable<(string Name, Func<ComputeDevice, ComparisonResult> Run)> All()
    {
        yield return ("overlap: narrow AlexNet, 4 batches of 3 uploaded on a copy stream into two input buffers, ordered by events; each batch bit-identical to its pass alone",
            UploadsOverlapWithoutMixingBatches);
    }

    public static ComparisonResult UploadsOverlapWithoutMixingBatches(ComputeDevice device)
    {
        const int batch = 3, batches = 4;
        using AlexNetModel model = AlexNetModel.Create(device, SyntheticNetwork.Weights(SyntheticNetwork.Narrow, seed: 13),
            new AlexNetOptions { MaxBatch = batch });
        int classes = model.NumClasses;
        long floats = (long)batch * AlexNetModel.InputFloatsPerImage;
        float[][] images = [.. Enumerable.Range(0, batches).Select(k => SyntheticNetwork.Images(batch, seed: 40 + k))];
        float[][] expected = [.. images.Select(x => model.Predict(x, batch))];

        using ComputeStream copy = device.CreateStream();
        using DeviceBuffer<float> input0 = model.AllocateInputBuffer(), input1 = model.AllocateInputBuffer();
        DeviceBuffer<float>[] inputs = [input0, input1];
        var pinnedIn = new PinnedHostBuffer<float>[batches];
        var pinnedOut = new PinnedHostBuffer<float>[batches];
        var uploaded = new DeviceEvent[batches];
        var done = new DeviceEvent[batches];
        DeviceEvent[] inputRead = [device.CreateEvent(), device.CreateEvent()];
        try
        {
            for (int k = 0; k < batches; k++)
            {
                pinnedIn[k] = device.AllocatePinned<float>(floats);
                images[k].CopyTo(pinnedIn[k].Span);
                pinnedOut[k] = device.AllocatePinned<float>((long)batch * classes);
                uploaded[k] = device.CreateEvent();
                done[k] = device.CreateEvent();
            }
            for (int k = 0; k < batches; k++)
            {
                int b = k % 2;
                if (k >= 2) copy.Wait(inputRead[b]);
                copy.CopyToDeviceAsync(pinnedIn[k], 0, inputs[b], 0, floats);
                copy.Record(uploaded[k]);
                model.Stream.Wait(uploaded[k]);
                model.Run(batch, inputs[b], inputRead[b]);
                model.CopyProbabilitiesAsync(pinnedOut[k]);
                model.Stream.Record(done[k]);
            }
            ComparisonResult? worst = null;
            for (int k = 0; k < batches; k++)
            {
                done[k].Synchronize();
                ComparisonResult r = Comparison.Exact(pinnedOut[k].Span.ToArray(), expected[k]);
                if (!r.Passed) return r with { Detail = $"batch {k} (input buffer {k % 2}): {r.Detail}" };
                worst ??= r;
            }
            return worst! with { Detail = $"{batches} batches, each bit-identical to its pass alone ({(device.GraphsUnsupportedReason is null ? "graph replays" : "stream passes")} between the uploads)" };
        }
        finally
        {
            copy.Synchronize();
            model.Stream.Synchronize();
            foreach (IDisposable? d in pinnedIn.Concat<IDisposable?>(pinnedOut).Concat(uploaded).Concat(done).Concat(inputRead)) d?.Dispose();
        }
    }
}
