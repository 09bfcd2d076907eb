using AlexNet.Cuda.Devices;

namespace AlexNet.Cuda.Bench;

/// <summary>
/// The engine's kernels and GEMMs at the sizes AlexNet uses them, timed on one device. Rates come from
/// the formulas in each kernel file's head comment (transpose: 8 bytes per element; GEMM: 2·m·n·k FLOPs).
/// </summary>
public static class KernelBenchmarks
{
    public static IEnumerable<BenchmarkResult> Run(ComputeDevice device, int warmup, int repeats, bool small)
    {
        // Small sizes keep a CPU (PoCL) run to seconds; the GPU runs AlexNet's real ones.
        int batch = small ? 4 : 128;
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
            yield return BenchmarkHarness.Measure(device, $"transpose_kernel1 {batch}x{rows}x{cols}",
                () => device.Launch(kernel, grid, new Dim3(32, 8), args), warmup, repeats, bytes: 8.0 * batch * rows * cols);
        }

        // fc6 (9216 -> 4096) and conv3 as a GEMM (384 filters × 3·3·256 taps × 13·13 pixels per image).
        foreach ((string label, int m, int n, int k) in new[]
                 {
                     ($"sgemm fc6 4096x{batch}x9216", 4096, batch, 9216),
                     ($"sgemm conv3 384x{169 * batch}x2304", 384, 169 * batch, 2304),
                 })
        {
            using DeviceBuffer<float> a = device.Allocate<float>((long)m * k);
            using DeviceBuffer<float> b = device.Allocate<float>((long)k * n);
            using DeviceBuffer<float> c = device.Allocate<float>((long)m * n);
            device.Fill(a, 0.01f);
            device.Fill(b, 0.02f);
            yield return BenchmarkHarness.Measure(device, label,
                () => device.Gemm(MatrixView.ColumnMajor(a, m, k), MatrixView.ColumnMajor(b, k, n), MatrixView.ColumnMajor(c, m, n)),
                warmup, repeats, flops: 2.0 * m * n * k);
        }
    }
}
