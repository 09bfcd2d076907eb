using AlexNet.Cuda.Devices;

namespace AlexNet.Cuda.Bench;

/// <summary>Device-timed repeats of one operation: median and minimum, with a work formula for rates.</summary>
public sealed record BenchmarkResult(string Name, int Repeats, double MedianMs, double MinMs, double? Gflops, double? GBps)
{
    public string Format() =>
        $"{Name,-52} median {MedianMs,9:F4} ms  min {MinMs,9:F4} ms" +
        (Gflops is double g ? $"  {g,9:F1} GFLOP/s" : "") +
        (GBps is double b ? $"  {b,8:F1} GB/s" : "");
}

/// <summary>
/// Times work queued on a device with the device's own events (CUDA events, OpenCL profiling), after
/// warm-up launches that absorb compilation, first-launch and cache effects; reports the median of the
/// repeats (robust to a noisy machine) and the minimum (the best the hardware did).
/// </summary>
public static class BenchmarkHarness
{
    public static BenchmarkResult Measure(ComputeDevice device, string name, Action enqueue,
        int warmup, int repeats, double flops = 0, double bytes = 0) =>
        Measure(device.DefaultStream, name, enqueue, warmup, repeats, flops, bytes);

    /// <summary>As <see cref="Measure(ComputeDevice, string, Action, int, int, double, double)"/> on
    /// <paramref name="stream"/>. <paramref name="beforeWarmup"/> and <paramref name="beforeRepeat"/>, when given,
    /// are told the index of each warm-up and timed launch before it is queued: for a progress line, and for a
    /// caller that stops the measurement by throwing from them (an interrupted benchmark).</summary>
    public static BenchmarkResult Measure(ComputeStream stream, string name, Action enqueue,
        int warmup, int repeats, double flops = 0, double bytes = 0, Action<int>? beforeRepeat = null, Action<int>? beforeWarmup = null)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(repeats);
        ComputeDevice device = stream.Device;
        for (int i = 0; i < warmup; i++)
        {
            beforeWarmup?.Invoke(i);
            enqueue();
        }
        stream.Synchronize();
        var times = new double[repeats];
        using DeviceEvent start = device.CreateEvent(timing: true);
        using DeviceEvent end = device.CreateEvent(timing: true);
        for (int i = 0; i < repeats; i++)
        {
            beforeRepeat?.Invoke(i);
            stream.Record(start);
            enqueue();
            stream.Record(end);
            times[i] = device.ElapsedMilliseconds(start, end);
        }
        return Result(name, times, flops, bytes);
    }

    /// <summary>The median and minimum of <paramref name="times"/> (ms), and the rates they give for
    /// <paramref name="flops"/> and <paramref name="bytes"/> of work (none for 0).</summary>
    public static BenchmarkResult Result(string name, IReadOnlyCollection<double> times, double flops = 0, double bytes = 0)
    {
        double median = Median(times);
        return new BenchmarkResult(name, times.Count, median, times.Min(),
            flops > 0 ? flops / (median * 1e6) : null,
            bytes > 0 ? bytes / (median * 1e6) : null);
    }

    /// <summary>The median of <paramref name="values"/> (the mean of the middle two for an even count).</summary>
    public static double Median(IReadOnlyCollection<double> values)
    {
        ArgumentOutOfRangeException.ThrowIfZero(values.Count);
        double[] sorted = [.. values.Order()];
        int n = sorted.Length;
        return n % 2 == 1 ? sorted[n / 2] : (sorted[n / 2 - 1] + sorted[n / 2]) / 2;
    }
}
