using AlexNet.Cuda.Compilation;
using AlexNet.Cuda.Devices;

namespace AlexNet.Cuda.Tests.Network;

/// <summary>One GEMM as a backend receives it: cuBLAS's column-major arguments, with each operand's byte
/// address (buffer address + offset · 4) and its batch stride in floats.</summary>
internal readonly record struct RecordedGemm(int M, int N, int K, int BatchCount,
    long AddressA, int Lda, long StrideA, long AddressB, int Ldb, long StrideB, long AddressC, int Ldc, long StrideC);

/// <summary>One GEMM with a bias epilogue as a backend receives it (<c>GemmBiasCore</c>): the checked column-major
/// call, the bias buffer and whether ReLU follows.</summary>
internal readonly record struct RecordedGemmBias(GemmCall Call, DeviceBuffer Bias, bool Relu);

/// <summary>
/// A device that computes nothing: its buffers are addresses on a 256-byte grid (as <c>cuMemAlloc</c> aligns
/// them) with no memory behind them, its launches and copies do nothing, and every GEMM is recorded as the
/// backend would receive it. So a whole network of any batch size can be driven through the engine's own
/// forward pass, in milliseconds, to see what it hands cuBLAS. It counts allocations and synchronisations too.
/// </summary>
internal sealed unsafe class RecordingDevice : ComputeDevice
{
    private readonly RecordingStream _stream;
    private long _nextAddress = 1L << 20;

    public RecordingDevice() => _stream = new RecordingStream(this);

    /// <summary>The GEMMs since the last <see cref="List{T}.Clear"/>; its capacity is kept, so recording a
    /// pass's few dozen GEMMs allocates nothing.</summary>
    public List<RecordedGemm> Gemms { get; } = new(4096);

    /// <summary>The GEMMs with a bias epilogue since the last clear (only where <see cref="HasGemmBias"/>).</summary>
    public List<RecordedGemmBias> GemmBiases { get; } = new(256);

    /// <summary>When set, the device has a GEMM with a bias epilogue for FP32 (what cuBLASLt gives CUDA), and records
    /// each call in <see cref="GemmBiases"/>.</summary>
    public bool HasGemmBias { get; init; }

    public override bool SupportsGemmBias(ElementFormat format, GemmMath math, out string? reason) =>
        HasGemmBias ? SupportsGemm(format, math, out reason) : base.SupportsGemmBias(format, math, out reason);

    public int Allocations { get; private set; }

    public int Synchronizations { get; set; }

    /// <summary>When set, its streams capture graphs: a capture records nothing of its own (the GEMMs queued
    /// meanwhile are recorded as always), and a replay only counts itself in <see cref="GraphLaunches"/>.</summary>
    public bool CapturesGraphs { get; init; }

    /// <summary>When set, every capture fails at its end with this message, as a driver's refusal would.</summary>
    public string? CaptureFailure { get; set; }

    public int CapturesBegun { get; private set; }

    public int CapturesAbandoned { get; private set; }

    public int GraphLaunches { get; private set; }

    public int GraphsReleased { get; private set; }

    /// <summary>The buffer the last copy to the host read from.</summary>
    public nint LastRead { get; private set; }

    public override DeviceBackend Backend => DeviceBackend.Cuda;

    public override string Name => "recording device";

    public override string Description => "recording device (computes nothing)";

    public override string CompilerVersion => "none";

    public override string GemmProvider => "recorded";

    public override long TotalMemoryBytes => long.MaxValue;

    public override long CacheBytes => 0;

    public override KernelCache Cache { get; } = new(Path.Combine(Path.GetTempPath(), "alexnet-recording-device-unused"));

    public override ComputeStream DefaultStream => _stream;

    protected override ComputeStream CreateStreamCore() => new RecordingStream(this);

    protected override KernelModule LoadModuleCore(KernelSource source, IReadOnlyDictionary<string, string>? defines) =>
        new RecordingModule(this, source);

    protected override DeviceEvent CreateEventCore(bool timing) => new RecordingEvent(this, timing);

    protected override double ElapsedMillisecondsCore(DeviceEvent start, DeviceEvent end) => 0;

    protected override void ReleaseDevice() { }

    protected internal override nint AllocateMemory(long bytes)
    {
        Allocations++;
        long address = _nextAddress;
        _nextAddress += (bytes + 511) / 256 * 256; // at least 256 bytes between buffers, every start on the grid
        return (nint)address;
    }

    protected internal override void FreeMemory(nint handle) { }

    protected internal override void* AllocatePinnedMemory(long bytes) => throw new NotSupportedException("the recording device has no host memory");

    protected internal override void FreePinnedMemory(void* pointer) { }

    private sealed class RecordingStream(RecordingDevice device) : ComputeStream(device)
    {
        private static long Address(DeviceBuffer<float> buffer, long offset) => buffer.Handle + offset * sizeof(float);

        protected override void WriteMemory(nint handle, long byteOffset, void* source, long bytes, bool wait) { }

        protected override void ReadMemory(nint handle, long byteOffset, void* destination, long bytes, bool wait) => device.LastRead = handle;

        protected override void FillMemory(nint handle, uint pattern, long count) { }

        protected override void LaunchCore(Kernel kernel, Dim3 grid, Dim3 block, in KernelArguments arguments, int sharedMemoryBytes) { }

        protected override void GemmCore(MatrixOp transA, MatrixOp transB, int m, int n, int k, float alpha,
            DeviceBuffer<float> a, long aOffset, int lda, DeviceBuffer<float> b, long bOffset, int ldb,
            float beta, DeviceBuffer<float> c, long cOffset, int ldc) =>
            device.Gemms.Add(new RecordedGemm(m, n, k, 1, Address(a, aOffset), lda, 0, Address(b, bOffset), ldb, 0, Address(c, cOffset), ldc, 0));

        protected override void GemmStridedBatchedCore(MatrixOp transA, MatrixOp transB, int m, int n, int k, float alpha,
            DeviceBuffer<float> a, long aOffset, int lda, long strideA, DeviceBuffer<float> b, long bOffset, int ldb, long strideB,
            float beta, DeviceBuffer<float> c, long cOffset, int ldc, long strideC, int batchCount) =>
            device.Gemms.Add(new RecordedGemm(m, n, k, batchCount, Address(a, aOffset), lda, strideA, Address(b, bOffset), ldb, strideB,
                Address(c, cOffset), ldc, strideC));

        protected override void GemmBiasCore(in GemmCall call, DeviceBuffer bias, bool relu) => device.GemmBiases.Add(new RecordedGemmBias(call, bias, relu));

        public override void Synchronize() => device.Synchronizations++;

        public override void Record(DeviceEvent @event) { }

        public override void Wait(DeviceEvent @event) { }

        protected override void Dispose(bool disposing) { }

        public override string? GraphsUnsupportedReason => device.CapturesGraphs ? null : base.GraphsUnsupportedReason;

        protected override void BeginCaptureCore() => device.CapturesBegun++;

        protected override DeviceGraph EndCaptureCore() =>
            device.CaptureFailure is string failure ? throw new AlexNetException(failure) : new RecordingGraph(device);

        protected override void AbandonCaptureCore() => device.CapturesAbandoned++;
    }

    private sealed class RecordingGraph(RecordingDevice device) : DeviceGraph(device)
    {
        protected override void LaunchCore(ComputeStream stream) => device.GraphLaunches++;

        protected override void ReleaseGraph() => device.GraphsReleased++;
    }

    private sealed class RecordingModule(RecordingDevice device, KernelSource source)
        : KernelModule(device, source, "recorded", fromCache: false, TimeSpan.Zero)
    {
        protected override Kernel CreateKernel(KernelSignature signature) => new RecordingKernel(this, signature);

        protected override void ReleaseModule() { }
    }

    private sealed class RecordingKernel(KernelModule module, KernelSignature signature) : Kernel(module, signature)
    {
        internal override void Release() { }
    }

    private sealed class RecordingEvent(RecordingDevice device, bool timing) : DeviceEvent(device, timing)
    {
        protected override void SynchronizeCore() { }

        protected override void ReleaseEvent() { }
    }
}
