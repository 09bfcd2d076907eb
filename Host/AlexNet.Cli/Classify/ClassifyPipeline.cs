using System.Diagnostics;
using AlexNet.Cuda;
using AlexNet.Cuda.Devices;
using AlexNet.Cuda.Network;
using AlexNet.Imaging;

namespace AlexNet.Cli.Classify;

/// <summary>What happened to one input: its class probabilities, or why it could not be used.</summary>
internal readonly record struct ImageResult(string Path, float[]? Probabilities, string? Error);

/// <summary>The rates <c>--stats</c> prints: which side limits the run.</summary>
internal sealed record PipelineStats(int Images, int Failed, TimeSpan Wall, TimeSpan DecodeWall, double DeviceMilliseconds, int Workers)
{
    public double EndToEndPerSecond => Images / Wall.TotalSeconds;

    /// <summary>Images decoded and preprocessed per second of decoding (all workers together).</summary>
    public double DecodePerSecond => Images / DecodeWall.TotalSeconds;

    /// <summary>Images per second of device time (upload, forward pass, download), from device events.</summary>
    public double InferencePerSecond => Images / (DeviceMilliseconds / 1000.0);
}

/// <summary>
/// Batch classification from files, keeping the device busy: images are read, decoded and preprocessed on
/// <c>workers</c> threads straight into a batch's page-locked input buffer (the resize stays in float, as the
/// reference's does); the batch is then uploaded, run and its probabilities copied back asynchronously, and
/// while the device works on it the workers fill the next slot. <see cref="SlotCount"/> batches are in flight;
/// memory is the slots, whatever the number of files. Results leave in input order as soon as their batch
/// is done; an image that cannot be used costs only itself (an error result; its slot is zeros).
/// </summary>
internal sealed class ClassifyPipeline : IDisposable
{
    /// <summary>Three slots: one being filled by the workers, one on the device, one being written out.</summary>
    public const int SlotCount = 3;

    private readonly AlexNetModel _model;
    private readonly ImageLoader _loader;
    private readonly Slot[] _slots;

    private sealed class Slot(ComputeDevice device, int batch, int classes) : IDisposable
    {
        public readonly PinnedHostBuffer<float> Input = device.AllocatePinned<float>((long)batch * AlexNetModel.InputFloatsPerImage);
        public readonly PinnedHostBuffer<float> Output = device.AllocatePinned<float>((long)batch * classes);
        public readonly DeviceEvent Start = device.CreateEvent(timing: true);
        public readonly DeviceEvent Done = device.CreateEvent(timing: true);
        public readonly string?[] Errors = new string?[batch];
        public int First, Count;
        public bool InFlight;

        public void Dispose()
        {
            Input.Dispose();
            Output.Dispose();
            Start.Dispose();
            Done.Dispose();
        }
    }

    public ClassifyPipeline(AlexNetModel model, ImageLoader loader)
    {
        _model = model;
        _loader = loader;
        _slots = new Slot[SlotCount];
        try
        {
            for (int i = 0; i < SlotCount; i++) _slots[i] = new Slot(model.Device, model.MaxBatch, model.NumClasses);
        }
        catch
        {
            Dispose();
            throw;
        }
    }

    /// <summary>
    /// Classifies <paramref name="paths"/> in batches and hands each result to <paramref name="emit"/> in input
    /// order. <paramref name="stop"/> ends the run cleanly after the batch being filled: the batches in flight
    /// are finished and written. <paramref name="progress"/> is told the images done so far after each batch.
    /// </summary>
    public PipelineStats Run(IReadOnlyList<string> paths, Action<ImageResult> emit, Func<bool> stop, Action<int>? progress)
    {
        var wall = Stopwatch.StartNew();
        var decodeWall = TimeSpan.Zero;
        double deviceMs = 0;
        int done = 0, failed = 0, batch = _model.MaxBatch, next = 0;
        ComputeStream stream = _model.Stream;

        void Finish(Slot slot)
        {
            slot.Done.Synchronize();
            deviceMs += _model.Device.ElapsedMilliseconds(slot.Start, slot.Done);
            Span<float> output = slot.Output.Span;
            int classes = _model.NumClasses;
            for (int i = 0; i < slot.Count; i++)
            {
                string path = paths[slot.First + i];
                if (slot.Errors[i] is string error)
                {
                    failed++;
                    emit(new ImageResult(path, null, error));
                }
                else emit(new ImageResult(path, output.Slice(i * classes, classes).ToArray(), null));
            }
            done += slot.Count;
            slot.InFlight = false;
            progress?.Invoke(done);
        }

        try
        {
            Loop();
        }
        catch
        {
            // Results could not be written (stdout's reader has gone) or a batch could not be queued: the slots'
            // pinned memory must outlive the copies still queued into it before anyone disposes it.
            foreach (Slot slot in _slots)
                if (slot.InFlight) slot.Done.Synchronize();
            throw;
        }
        return new PipelineStats(done, failed, wall.Elapsed, decodeWall, deviceMs, _loader.Workers);

        void Loop()
        {
            for (int k = 0; next < paths.Count && !stop(); k++)
            {
                Slot slot = _slots[k % SlotCount];
                if (slot.InFlight) Finish(slot);
                slot.First = next;
                slot.Count = Math.Min(batch, paths.Count - next);
                next += slot.Count;

                // Decode on every worker straight into the pinned slot; the device meanwhile runs earlier batches.
                var decode = Stopwatch.StartNew();
                PinnedHostBuffer<float> input = slot.Input;
                _loader.Load(paths, slot.First, slot.Count,
                    i => input.Span.Slice(i * AlexNetModel.InputFloatsPerImage, AlexNetModel.InputFloatsPerImage), slot.Errors);
                decodeWall += decode.Elapsed;

                stream.Record(slot.Start);
                stream.CopyToDeviceAsync(input, 0, _model.InputBuffer, 0, (long)slot.Count * AlexNetModel.InputFloatsPerImage);
                _model.Run(slot.Count);
                _model.CopyProbabilitiesAsync(slot.Output);
                stream.Record(slot.Done);
                slot.InFlight = true;
            }
            // The rest of the batches in flight, oldest first.
            for (int k = 0; k < SlotCount; k++)
            {
                Slot? oldest = _slots.Where(s => s.InFlight).MinBy(s => s.First);
                if (oldest is null) break;
                Finish(oldest);
            }
        }
    }

    public void Dispose()
    {
        foreach (Slot? slot in _slots) slot?.Dispose();
    }
}
