using AlexNet.Cuda.Checks;
using AlexNet.Cuda.Devices;
using AlexNet.Cuda.Network;
using AlexNet.Cuda.Weights;

namespace AlexNet.Cuda.Bench;

/// <summary>
/// Every kernel launch and GEMM of AlexNet's forward pass, each timed on one device, and the transpose kernel,
/// which the pass does not use. The pass runs whole (seeded synthetic weights of BVLC AlexNet's shapes) with a
/// device event between each two of its operations (<see cref="ForwardProfile"/>): the warm-up passes are
/// untimed, and each operation's median and minimum are over the timed passes. An operation that runs once
/// per workspace chunk (a convolution's im2col and GEMM) is timed as the sum of its chunks. Rates come from
/// the work the plan counts for each step (<see cref="NetworkPlan.StepCosts"/>: GFLOP/s for the GEMMs, GB/s
/// for the rest) and, for the transpose, from its file's head comment (8 bytes per element).
/// </summary>
public static class KernelBenchmarks
{
    /// <summary>The batch of <c>--size small</c>, seconds on a CPU (PoCL), and of <c>--size full</c>, AlexNet's own.</summary>
    public static int Batch(bool small) => small ? 4 : 128;

    /// <summary>
    /// The transpose's result first, then one result per operation of the pass, in the pass's order.
    /// <paramref name="beforeLaunch"/>, when given, is told of each launch or pass before it is queued ("forward
    /// pass 3/20"), for a progress line or to stop the measurement by throwing.
    /// </summary>
    public static IEnumerable<BenchmarkResult> Run(ComputeDevice device, int warmup, int repeats, bool small,
        Action<string>? beforeLaunch = null)
    {
        int batch = Batch(small);
        using (KernelModule module = device.LoadModule("transpose.cu"))
        {
            Kernel kernel = module.GetKernel("transpose_kernel1");
            // pool1's output as NHWC (27·27 pixels × 96 channels) to NCHW, per image.
            int rows = 27 * 27, cols = 96;
            using DeviceBuffer<float> src = device.Allocate<float>((long)batch * rows * cols);
            using DeviceBuffer<float> dst = device.Allocate<float>((long)batch * rows * cols);
            device.Fill(src, 1f);
            var args = new KernelArguments();
            args.Add(dst);
            args.Add(src);
            args.Add(rows);
            args.Add(cols);
            var grid = new Dim3(Dim3.CeilDiv(cols, 32), Dim3.CeilDiv(rows, 32), (uint)batch);
            yield return BenchmarkHarness.Measure(device.DefaultStream, $"transpose_kernel1 {batch}x{rows}x{cols} (not in the pass)",
                () => device.Launch(kernel, grid, new Dim3(32, 8), args), warmup, repeats, bytes: 8.0 * batch * rows * cols,
                beforeRepeat: i => beforeLaunch?.Invoke($"transpose launch {i + 1}/{repeats}"),
                beforeWarmup: i => beforeLaunch?.Invoke($"transpose warm-up launch {i + 1}/{warmup}"));
        }

        foreach (BenchmarkResult result in ForwardPass(device, batch, warmup, repeats, beforeLaunch)) yield return result;
    }

    private static IReadOnlyList<BenchmarkResult> ForwardPass(ComputeDevice device, int batch, int warmup, int repeats,
        Action<string>? beforeLaunch)
    {
        AlexNetWeights weights = SyntheticNetwork.Weights(AlexNetArchitecture.Default, seed: 1);
        using AlexNetModel model = AlexNetModel.Create(device, weights, new AlexNetOptions { MaxBatch = batch });
        model.Forward(SyntheticNetwork.Images(batch, seed: batch), batch);
        for (int i = 0; i < warmup; i++)
        {
            beforeLaunch?.Invoke($"forward warm-up pass {i + 1}/{warmup}");
            model.Run(batch);
        }
        model.Stream.Synchronize();

        using ForwardProfile profile = model.CreateProfile();
        var times = new Dictionary<string, List<double>>(StringComparer.Ordinal);
        var order = new List<string>();
        for (int i = 0; i < repeats; i++)
        {
            beforeLaunch?.Invoke($"forward pass {i + 1}/{repeats}");
            model.Run(batch, profile);
            foreach ((string name, double ms) in profile.Read())
            {
                if (!times.TryGetValue(name, out List<double>? list)) { times[name] = list = []; order.Add(name); }
                list.Add(ms);
            }
        }
        Dictionary<string, StepCost> costs = model.StepCosts(batch).ToDictionary(c => c.Name, StringComparer.Ordinal);
        return order.Select(name =>
        {
            StepCost? cost = costs.GetValueOrDefault(name);
            return BenchmarkHarness.Result(name, times[name],
                flops: cost?.Flops ?? 0, bytes: cost is { Flops: 0 } ? cost.Bytes : 0);
        }).ToList();
    }
}
