using System.Diagnostics;
using AlexNet.Cuda;
using AlexNet.Cuda.Devices;
using AlexNet.Cuda.Network;
using AlexNet.Imaging;

namespace AlexNet.Cli.Classify;

/// <summary>What happened to one input: its class probabilities, or why it could not be used.</summary>
internal readonly record struct ImageResult(string Path, float[]? Probabilities, string? Error);

/// <summary>The rates <c>--stats</c> prints: which side limits the run.</summary>
internal sealed record PipelineStats(int Images, int Failed, TimeSpan Wall, TimeSpan DecodeWall, double DeviceMilliseconds, int Workers,
    double UploadMilliseconds = 0, bool OverlappedUploads = false)
{
    public double EndToEndPerSecond => Images / Wall.TotalSeconds;

    /// <summary>Images decoded and preprocessed per second of decoding (all workers together).</summary>
    public double DecodePerSecond => Images / DecodeWall.TotalSeconds;

    /// <summary>Images per second of the compute stream's time (the pass and the probabilities' download, and the
    /// upload too when it is not on a stream of its own), from device events.</summary>
    public double InferencePerSecond => Images / (DeviceMilliseconds / 1000.0);

    /// <summary>The share of the run's wall time the compute stream was busy: near 1, the device limits the run;
    /// well below, decoding (or the uploads) do.</summary>
    public double DeviceBusyFraction => Wall.TotalMilliseconds > 0 ? Math.Min(1, DeviceMilliseconds / Wall.TotalMilliseconds) : 0;
}

/// <summary>
/// Batch classification from files, keeping the device busy: images are read, decoded and preprocessed on
/// <c>workers</c> threads straight into a batch's page-locked input buffer (the resize stays in float, as the
/// reference's does); the batch is then uploaded, run and its probabilities copied back asynchronously, and
/// while the device works on it the workers fill the next slot. <see cref="SlotCount"/> batches are in flight;
/// memory is the slots, whatever the number of files. Results leave in input order as soon as their batch
/// is done; an image that cannot be used costs only itself (an error result; its slot is zeros).
/// <para>
/// With overlapped uploads (a GPU's default) each batch is uploaded on a copy stream of its own into one of two
/// device input buffers, so the upload of batch i+1 (0.6 MB an image over PCIe) runs while batch i computes; the
/// compute stream waits for the upload's event, and the copy stream, before refilling a buffer, for the event the
/// pass records once it has read it. The probabilities (4 KB an image) come back on the compute stream behind their
/// pass. On a CPU device the copies are the same cores' memcpy and stay on the one stream.
/// </para>
/// </summary>
internal sealed class ClassifyPipeline : IDisposable
{
    /// <summary>Three slots: one being filled by the workers, one on the device, one being written out.</summary>
    public const int SlotCount = 3;

    private readonly AlexNetModel _model;
    private readonly ImageLoader _loader;
    private readonly Slot[] _slots;
    // Overlapped uploads: the copy stream, the two device input buffers, and per buffer the events that order them.
    private readonly ComputeStream? _copy;
    private readonly DeviceBuffer<float>[] _inputs = [];
    private readonly DeviceEvent[] _inputRead = [];

    private sealed class Slot(ComputeDevice device, int batch, int classes) : IDisposable
    {
        public readonly PinnedHostBuffer<float> Input = device.AllocatePinned<float>((long)batch * AlexNetModel.InputFloatsPerImage);
        public readonly PinnedHostBuffer<float> Output = device.AllocatePinned<float>((long)batch * classes);
        public readonly DeviceEvent Start = device.CreateEvent(timing: true);
        public readonly DeviceEvent Done = device.CreateEvent(timing: true);
        // The upload's own span on the copy stream, when uploads are overlapped.
        public readonly DeviceEvent UploadStart = device.CreateEvent(timing: true);
        public readonly DeviceEvent Uploaded = device.CreateEvent(timing: true);
        public readonly string?[] Errors = new string?[batch];
        public int First, Count;
        public bool InFlight;

        public void Dispose()
        {
            Input.Dispose();
            Output.Dispose();
            Start.Dispose();
            Done.Dispose();
            UploadStart.Dispose();
            Uploaded.Dispose();
        }
    }

    /// <summary>A pipeline for <paramref name="model"/>; <paramref name="overlapUploads"/> null: on where the device is not
    /// the CPU (see the class remarks).</summary>
    public ClassifyPipeline(AlexNetModel model, ImageLoader loader, bool? overlapUploads = null)
    {
        _model = model;
        _loader = loader;
        _slots = new Slot[SlotCount];
        try
        {
            for (int i = 0; i < SlotCount; i++) _slots[i] = new Slot(model.Device, model.MaxBatch, model.NumClasses);
            if (overlapUploads ?? !model.Device.IsCpu)
            {
                ComputeDevice device = model.Device;
                _copy = device.CreateStream();
                _inputs = [model.AllocateInputBuffer(), model.AllocateInputBuffer()];
                _inputRead = [device.CreateEvent(), device.CreateEvent()];
            }
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
        double deviceMs = 0, uploadMs = 0;
        int done = 0, failed = 0, batch = _model.MaxBatch, next = 0;
        ComputeStream stream = _model.Stream;

        void Finish(Slot slot)
        {
            slot.Done.Synchronize();
            deviceMs += _model.Device.ElapsedMilliseconds(slot.Start, slot.Done);
            if (_copy is not null) uploadMs += _model.Device.ElapsedMilliseconds(slot.UploadStart, slot.Uploaded);
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
        return new PipelineStats(done, failed, wall.Elapsed, decodeWall, deviceMs, _loader.Workers, uploadMs, _copy is not null);

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

                long floats = (long)slot.Count * AlexNetModel.InputFloatsPerImage;
                if (_copy is null)
                {
                    stream.Record(slot.Start);
                    stream.CopyToDeviceAsync(input, 0, _model.InputBuffer, 0, floats);
                    _model.Run(slot.Count);
                }
                else
                {
                    // Batch k uploads into buffer k mod 2, after the pass of batch k−2 has read that buffer.
                    int b = k % 2;
                    if (k >= 2) _copy.Wait(_inputRead[b]);
                    _copy.Record(slot.UploadStart);
                    _copy.CopyToDeviceAsync(input, 0, _inputs[b], 0, floats);
                    _copy.Record(slot.Uploaded);
                    stream.Wait(slot.Uploaded);
                    stream.Record(slot.Start);
                    _model.Run(slot.Count, _inputs[b], _inputRead[b]);
                }
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
        // The copy stream's queued work has finished with the buffers before they go (its Dispose waits for it).
        _copy?.Dispose();
        foreach (Slot? slot in _slots) slot?.Dispose();
        foreach (DeviceBuffer<float> input in _inputs) input.Dispose();
        foreach (DeviceEvent e in _inputRead) e.Dispose();
    }
}
