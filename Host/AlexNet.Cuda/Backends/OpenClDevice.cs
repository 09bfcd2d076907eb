using System.Diagnostics;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Text;
using AlexNet.Cuda.Compilation;
using AlexNet.Cuda.Devices;
using AlexNet.Cuda.Interop;

namespace AlexNet.Cuda.Backends;

/// <summary>One OpenCL device as the platform reports it.</summary>
public sealed record OpenClDeviceInfo(int Index, IntPtr Platform, IntPtr Device, string PlatformName, string PlatformVersion,
    string Name, string Vendor, string Version, string DriverVersion, bool IsGpu, int ComputeUnits, long GlobalMemoryBytes,
    bool IsCpu = false, bool HostUnifiedMemory = false, long CacheBytes = 0)
{
    /// <summary>Whether the device's buffers live in the host's memory, so the host can work on them
    /// through a mapping without a copy: a CPU device (PoCL) or one reporting unified host memory.</summary>
    public bool BuffersInHostMemory => IsCpu || HostUnifiedMemory;

    public override string ToString() =>
        $"opencl:{Index} {Name} ({PlatformName}, {Version}, driver {DriverVersion}, {ComputeUnits} compute units)";
}

/// <summary>Who runs an OpenCL device's GEMMs.</summary>
public enum OpenClGemmProvider
{
    /// <summary>Chosen by device: OpenBLAS where the buffers live in host memory, else CLBlast (<see cref="OpenClDevice.ChooseGemmProvider"/>).</summary>
    Auto,
    /// <summary>CLBlast's OpenCL kernels, queued like any other kernel.</summary>
    ClBlast,
    /// <summary>OpenBLAS on the host's cores, on the buffers mapped into the host's address space.</summary>
    OpenBlas,
    /// <summary>oneDNN's SGEMM on the host's cores, on the mapped buffers (the CPU device's default where it loads).</summary>
    OneDnn,
}

/// <summary>
/// An OpenCL 1.2 device (PoCL on the CPU in the tests): in-order profiling command queues as streams, kernels
/// compiled by the OpenCL driver from the same CUDA C text as NVRTC's (through the prelude), GEMMs with
/// column-major layout so the semantics match cuBLAS's: by CLBlast, or, on a device whose buffers
/// live in host memory, by OpenBLAS on the mapped buffers (on PoCL's CPU device CLBlast's kernels reach a few
/// GFLOP/s where OpenBLAS reaches over a hundred; see docs/platform.md).
/// </summary>
public sealed unsafe class OpenClDevice : ComputeDevice
{
    private readonly OpenClDeviceInfo _info;
    private IntPtr _context;
    private readonly OpenClStream _defaultStream;
    // A kernel object holds its arguments: setting them and enqueueing must not interleave across
    // threads or streams.
    private readonly Lock _launchGate = new();
    private readonly OpenClGemmProvider _gemm;

    /// <summary>The environment variable that forces a GEMM provider: <c>clblast</c> or <c>openblas</c>.</summary>
    public const string GemmVariable = "ALEXNET_OPENCL_GEMM";

    private OpenClDevice(OpenClDeviceInfo info, IntPtr context, IntPtr queue, KernelCache cache, OpenClGemmProvider gemm, string gemmName)
    {
        _info = info;
        _context = context;
        _gemm = gemm;
        GemmProvider = gemmName;
        _defaultStream = new OpenClStream(this, queue);
        Cache = cache;
    }

    /// <summary>The provider <see cref="GemmVariable"/> asks for: <see cref="OpenClGemmProvider.Auto"/> when it
    /// is unset or empty; any other value than clblast, openblas or onednn is refused.</summary>
    public static OpenClGemmProvider RequestedGemmProvider() => ParseGemmProvider(Environment.GetEnvironmentVariable(GemmVariable));

    internal static OpenClGemmProvider ParseGemmProvider(string? value) =>
        value?.Trim().ToLowerInvariant() switch
        {
            null or "" or "auto" => OpenClGemmProvider.Auto,
            "clblast" => OpenClGemmProvider.ClBlast,
            "openblas" => OpenClGemmProvider.OpenBlas,
            "onednn" or "dnnl" => OpenClGemmProvider.OneDnn,
            _ => throw new AlexNetException($"{GemmVariable}='{value}' is not a GEMM provider: use clblast, openblas or onednn, or unset it to choose by device"),
        };

    /// <summary>
    /// The provider a device gets for <paramref name="requested"/>. Auto, where the buffers live in host memory
    /// (<see cref="OpenClDeviceInfo.BuffersInHostMemory"/>: PoCL's CPU device), is oneDNN when it loads, else
    /// OpenBLAS when it loads; otherwise CLBlast. oneDNN 2.6's SGEMM (AVX-512 JIT kernels) measured 1.2–1.5×
    /// OpenBLAS 0.3.21's (AVX2 here) on most of the engine's GEMM shapes and 20–30 % less over a whole pass's
    /// GEMMs at batch 8 and 32 (docs/performance.md). On the CPU device OpenBLAS on the mapped buffers reaches 120-200 GFLOP/s on the
    /// convolution GEMMs where CLBlast's OpenCL kernels reach a few (docs/benchmarks.md). Like cuBLAS,
    /// OpenBLAS may sum a column of C in a different order depending on the call's shape (OpenBLAS 0.3.21:
    /// column 0 of a 1000×n×2304 product differs in the 5th digit between n = 1, 7 and 16), so an image's
    /// output can differ by a rounding error with the batch it is run in; it is the same for the same
    /// batching. Asking for OpenBLAS where it does not load throws <see cref="NativeLibraryNotFoundException"/>.
    /// Returns the provider and its name as <see cref="ComputeDevice.GemmProvider"/> reports it.
    /// </summary>
    public static (OpenClGemmProvider Provider, string Name) ChooseGemmProvider(OpenClDeviceInfo info, OpenClGemmProvider requested)
    {
        OpenClGemmProvider chosen = requested switch
        {
            OpenClGemmProvider.ClBlast => OpenClGemmProvider.ClBlast,
            OpenClGemmProvider.OpenBlas => NativeLibraries.Load(NativeLibraryId.OpenBlas) != IntPtr.Zero ? OpenClGemmProvider.OpenBlas : OpenClGemmProvider.ClBlast,
            OpenClGemmProvider.OneDnn => NativeLibraries.Load(NativeLibraryId.OneDnn) != IntPtr.Zero ? OpenClGemmProvider.OneDnn : OpenClGemmProvider.ClBlast,
            _ when !info.BuffersInHostMemory => OpenClGemmProvider.ClBlast,
            _ when NativeLibraries.TryLoad(NativeLibraryId.OneDnn, out _) => OpenClGemmProvider.OneDnn,
            _ when NativeLibraries.TryLoad(NativeLibraryId.OpenBlas, out _) => OpenClGemmProvider.OpenBlas,
            _ => OpenClGemmProvider.ClBlast,
        };
        return chosen switch
        {
            OpenClGemmProvider.OpenBlas => (chosen, $"{OpenBlasVersion.Value} on mapped buffers"),
            OpenClGemmProvider.OneDnn => (chosen, $"{OneDnnVersion.Value} on mapped buffers"),
            _ => (OpenClGemmProvider.ClBlast, "CLBlast"),
        };
    }

    // "oneDNN 2.6.3".
    private static readonly Lazy<string> OneDnnVersion = new(() =>
    {
        DnnlVersion* v = OneDnn.dnnl_version();
        return v == null ? "oneDNN" : $"oneDNN {v->Major}.{v->Minor}.{v->Patch}";
    });

    /// <summary>True when this device's GEMMs run on the host's cores on mapped buffers (OpenBLAS or oneDNN).</summary>
    private bool GemmsOnHost => _gemm is OpenClGemmProvider.OpenBlas or OpenClGemmProvider.OneDnn;

    // "OpenBLAS 0.3.21 DYNAMIC_ARCH NO_AFFINITY SkylakeX MAX_THREADS=64": the first two words.
    private static readonly Lazy<string> OpenBlasVersion = new(() =>
    {
        byte* config = OpenBlas.openblas_get_config();
        string text = config == null ? "" : System.Runtime.InteropServices.Marshal.PtrToStringUTF8((IntPtr)config) ?? "";
        string[] words = text.Split(' ', StringSplitOptions.RemoveEmptyEntries);
        return words.Length >= 2 ? $"{words[0]} {words[1]}" : "OpenBLAS";
    });

    public override string GemmProvider { get; }

    /// <summary>The host GEMM (oneDNN or OpenBLAS) on mapped buffers runs every format (converted on the host,
    /// <c>GemmExCore</c>); CLBlast only FP32.</summary>
    public override bool SupportsGemm(ElementFormat format, GemmMath math, out string? reason)
    {
        if (GemmsOnHost)
        {
            reason = null;
            return true;
        }
        return base.SupportsGemm(format, math, out reason);
    }

    /// <summary>The provider this device's GEMMs use.</summary>
    public OpenClGemmProvider GemmProviderKind => _gemm;

    /// <summary>Every OpenCL device of every platform, numbered in that order.</summary>
    public static IReadOnlyList<OpenClDeviceInfo> Enumerate()
    {
        NativeLibraries.Load(NativeLibraryId.OpenCl);
        // The first call loads and initialises the platforms' drivers; PoCL's installs signal handlers
        // over the runtime's (SignalHandlers says why that matters).
        using SignalHandlers.Scope handlers = SignalHandlers.Preserve();
        int status = OpenCl.clGetPlatformIDs(0, null, out uint platformCount);
        if (status == OpenCl.PlatformNotFoundKhr || platformCount == 0) return [];
        OpenClException.ThrowIfFailed(status);
        var platforms = new IntPtr[platformCount];
        fixed (IntPtr* p = platforms) OpenClException.ThrowIfFailed(OpenCl.clGetPlatformIDs(platformCount, p, out _));

        var result = new List<OpenClDeviceInfo>();
        foreach (IntPtr platform in platforms)
        {
            status = OpenCl.clGetDeviceIDs(platform, OpenCl.DeviceTypeAll, 0, null, out uint deviceCount);
            if (status == OpenCl.DeviceNotFound || deviceCount == 0) continue;
            OpenClException.ThrowIfFailed(status);
            var devices = new IntPtr[deviceCount];
            fixed (IntPtr* d = devices) OpenClException.ThrowIfFailed(OpenCl.clGetDeviceIDs(platform, OpenCl.DeviceTypeAll, deviceCount, d, out _));
            foreach (IntPtr device in devices)
            {
                result.Add(new OpenClDeviceInfo(result.Count, platform, device,
                    PlatformText(platform, OpenCl.PlatformName), PlatformText(platform, OpenCl.PlatformVersion),
                    DeviceText(device, OpenCl.DeviceName), DeviceText(device, OpenCl.DeviceVendor),
                    DeviceText(device, OpenCl.DeviceVersion), DeviceText(device, OpenCl.DriverVersion),
                    (DeviceValue<ulong>(device, OpenCl.DeviceType) & OpenCl.DeviceTypeGpu) != 0,
                    (int)DeviceValue<uint>(device, OpenCl.DeviceMaxComputeUnits),
                    (long)DeviceValue<ulong>(device, OpenCl.DeviceGlobalMemSize),
                    (DeviceValue<ulong>(device, OpenCl.DeviceType) & OpenCl.DeviceTypeCpu) != 0,
                    DeviceValue<uint>(device, OpenCl.DeviceHostUnifiedMemory) != 0, // a cl_bool
                    (long)DeviceValue<ulong>(device, OpenCl.DeviceGlobalMemCacheSize)));
            }
        }
        return result;
    }

    /// <summary>
    /// Opens OpenCL device <paramref name="index"/> (see <see cref="Enumerate"/>), or when it is null the
    /// first GPU, else the first device. Throws <see cref="NoDeviceException"/> ("no OpenCL device: …").
    /// The GEMM provider is the one <see cref="GemmVariable"/> asks for, else chosen by device
    /// (<see cref="ChooseGemmProvider"/>).
    /// </summary>
    public static OpenClDevice Open(int? index = null, KernelCache? cache = null) => Open(index, cache, RequestedGemmProvider());

    /// <summary><see cref="Open(int?, KernelCache?)"/> with the GEMM provider given rather than read from the environment.</summary>
    internal static OpenClDevice Open(int? index, KernelCache? cache, OpenClGemmProvider gemm)
    {
        IReadOnlyList<OpenClDeviceInfo> devices;
        try
        {
            devices = Enumerate();
        }
        catch (AlexNetException e)
        {
            throw new NoDeviceException(DeviceBackend.OpenCl, $"no OpenCL device: {e.Message}", e);
        }
        if (devices.Count == 0)
            throw new NoDeviceException(DeviceBackend.OpenCl, "no OpenCL device: no platform reports one; install an OpenCL driver (Debian: pocl-opencl-icd)");
        OpenClDeviceInfo info = index is int i
            ? (i >= 0 && i < devices.Count ? devices[i] : throw new NoDeviceException(DeviceBackend.OpenCl, $"no OpenCL device {i}: there are {devices.Count}"))
            : devices.FirstOrDefault(d => d.IsGpu) ?? devices[0];
        (OpenClGemmProvider provider, string providerName) = ChooseGemmProvider(info, gemm);

        IntPtr device = info.Device;
        using SignalHandlers.Scope handlers = SignalHandlers.Preserve();
        IntPtr context = OpenCl.clCreateContext(null, 1, &device, IntPtr.Zero, IntPtr.Zero, out int error);
        OpenClException.ThrowIfFailed(error, "clCreateContext");
        IntPtr queue = OpenCl.clCreateCommandQueue(context, device, OpenCl.QueueProfilingEnable, out error);
        if (error != OpenCl.Success)
        {
            OpenCl.clReleaseContext(context);
            OpenClException.ThrowIfFailed(error, "clCreateCommandQueue(CL_QUEUE_PROFILING_ENABLE)");
        }
        return new OpenClDevice(info, context, queue, cache ?? KernelCache.Default, provider, providerName);
    }

    public override DeviceBackend Backend => DeviceBackend.OpenCl;

    public override string Name => _info.Name;

    public OpenClDeviceInfo Info => _info;

    public override bool IsCpu => _info.IsCpu;

    public override string CompilerVersion => $"{_info.Version} ({_info.PlatformName} {_info.DriverVersion})";

    public override long TotalMemoryBytes => _info.GlobalMemoryBytes;

    public override long CacheBytes => _info.CacheBytes;

    public override KernelCache Cache { get; }

    public override string Description => _info.ToString();

    /// <summary>The default stream's command queue (for interop).</summary>
    public IntPtr Queue => _defaultStream.Queue;

    // ---- memory ----

    protected internal override nint AllocateMemory(long bytes)
    {
        ObjectDisposedException.ThrowIf(_context == IntPtr.Zero, this);
        IntPtr buffer = OpenCl.clCreateBuffer(_context, OpenCl.MemReadWrite, (nuint)bytes, null, out int error);
        if (error is -4 or -5 or -6 or -61) // allocation failure, out of resources/host memory, invalid buffer size
            throw new AlexNetException($"out of device memory: allocating {Bytes(bytes)} on {Name} failed with {OpenCl.ErrorName(error)}; use a smaller batch");
        OpenClException.ThrowIfFailed(error, $"clCreateBuffer({bytes} bytes)");
        return buffer;
    }

    protected internal override void FreeMemory(nint handle)
    {
        if (_context != IntPtr.Zero) OpenCl.clReleaseMemObject(handle);
    }

    protected internal override void* AllocatePinnedMemory(long bytes)
    {
        // OpenCL 1.2 has no portable page-locked allocation; aligned host memory keeps the same API (and
        // PoCL, on the CPU, copies from it at memory speed).
        try
        {
            return System.Runtime.InteropServices.NativeMemory.AlignedAlloc((nuint)bytes, 64);
        }
        catch (OutOfMemoryException)
        {
            throw new AlexNetException($"out of host memory: allocating {Bytes(bytes)} failed; use a smaller batch");
        }
    }

    protected internal override void FreePinnedMemory(void* pointer) => System.Runtime.InteropServices.NativeMemory.AlignedFree(pointer);

    // ---- kernels ----

    /// <summary>Options every build uses: the OpenCL C version the prelude is written for; no fast-math,
    /// so results stay comparable with the CUDA build and the references.</summary>
    public static IReadOnlyList<string> BaseOptions => ["-cl-std=CL1.2"];

    protected override KernelModule LoadModuleCore(KernelSource source, IReadOnlyDictionary<string, string>? defines)
    {
        var clock = Stopwatch.StartNew();
        string options = string.Join(' ', BaseOptions.Concat(KernelSource.DefineOptions(defines)));
        string key = KernelCache.Key(source.Hash, options, _info.PlatformName, _info.PlatformVersion, _info.Name, _info.DriverVersion);

        byte[]? binary = Cache.TryRead("opencl", source.Name, key, "bin");
        if (binary is { Length: > 0 } && TryBuildFromBinary(binary, options) is IntPtr cached)
            return Loaded(new OpenClModule(this, cached, source, key, fromCache: true, clock.Elapsed));

        IntPtr program = BuildFromSource(source, options);
        if (ReadBinary(program) is byte[] built) Cache.TryWrite("opencl", source.Name, key, "bin", built);
        return Loaded(new OpenClModule(this, program, source, key, fromCache: false, clock.Elapsed));
    }

    private IntPtr BuildFromSource(KernelSource source, string options)
    {
        byte[] text = Encoding.UTF8.GetBytes(source.Text);
        IntPtr program;
        int error;
        fixed (byte* p = text)
        {
            byte* strings = p;
            nuint length = (nuint)text.Length;
            program = OpenCl.clCreateProgramWithSource(_context, 1, &strings, &length, out error);
        }
        OpenClException.ThrowIfFailed(error, $"clCreateProgramWithSource({source.Name})");
        int status = Build(program, options);
        if (status != OpenCl.Success)
        {
            string log = BuildLog(program);
            OpenCl.clReleaseProgram(program);
            throw OpenClException.Create(status, $"clBuildProgram({source.Name}, {options})", log);
        }
        return program;
    }

    private IntPtr? TryBuildFromBinary(byte[] binary, string options)
    {
        IntPtr device = _info.Device;
        IntPtr program;
        int error, binaryStatus;
        fixed (byte* p = binary)
        {
            byte* image = p;
            nuint length = (nuint)binary.Length;
            program = OpenCl.clCreateProgramWithBinary(_context, 1, &device, &length, &image, &binaryStatus, out error);
        }
        if (error != OpenCl.Success || binaryStatus != OpenCl.Success) return null;
        if (Build(program, options) == OpenCl.Success) return program;
        // A stale or foreign binary only costs a rebuild from source.
        OpenCl.clReleaseProgram(program);
        return null;
    }

    private int Build(IntPtr program, string options)
    {
        IntPtr device = _info.Device;
        byte[] optionBytes = NativeText.NulTerminated(options);
        // The compiler (LLVM, in PoCL) may install its signal handlers on its first use.
        using SignalHandlers.Scope handlers = SignalHandlers.Preserve();
        fixed (byte* o = optionBytes) return OpenCl.clBuildProgram(program, 1, &device, o, IntPtr.Zero, IntPtr.Zero);
    }

    private string BuildLog(IntPtr program)
    {
        if (OpenCl.clGetProgramBuildInfo(program, _info.Device, OpenCl.ProgramBuildLog, 0, null, out nuint size) != OpenCl.Success || size <= 1)
            return "";
        var log = new byte[(int)size];
        fixed (byte* p = log)
            if (OpenCl.clGetProgramBuildInfo(program, _info.Device, OpenCl.ProgramBuildLog, size, p, out _) != OpenCl.Success) return "";
        return NativeText.FromUtf8(log);
    }

    private static byte[]? ReadBinary(IntPtr program)
    {
        nuint size;
        if (OpenCl.clGetProgramInfo(program, OpenCl.ProgramBinarySizes, (nuint)sizeof(nuint), &size, out _) != OpenCl.Success || size == 0)
            return null;
        var binary = new byte[(int)size];
        fixed (byte* p = binary)
        {
            byte* pointer = p;
            if (OpenCl.clGetProgramInfo(program, OpenCl.ProgramBinaries, (nuint)sizeof(byte*), &pointer, out _) != OpenCl.Success) return null;
        }
        return binary;
    }

    // ---- streams and timing ----

    public override ComputeStream DefaultStream => _defaultStream;

    protected override ComputeStream CreateStreamCore()
    {
        ObjectDisposedException.ThrowIf(_context == IntPtr.Zero, this);
        IntPtr queue = OpenCl.clCreateCommandQueue(_context, _info.Device, OpenCl.QueueProfilingEnable, out int error);
        OpenClException.ThrowIfFailed(error, "clCreateCommandQueue(CL_QUEUE_PROFILING_ENABLE)");
        return new OpenClStream(this, queue);
    }

    protected override DeviceEvent CreateEventCore(bool timing) => new OpenClEvent(this, timing);

    protected override double ElapsedMillisecondsCore(DeviceEvent start, DeviceEvent end)
    {
        if (start is not OpenClEvent s || end is not OpenClEvent e) throw new ArgumentException("events of another backend");
        if (!s.IsRecorded || !e.IsRecorded) throw new ArgumentException("both events must be recorded before measuring between them");
        IntPtr* handles = stackalloc IntPtr[2] { s.Handle, e.Handle };
        OpenClException.ThrowIfFailed(OpenCl.clWaitForEvents(2, handles));
        // A marker completes when everything queued before it has: its END is that moment.
        ulong t0 = ProfilingTime(s.Handle, OpenCl.ProfilingCommandEnd);
        ulong t1 = ProfilingTime(e.Handle, OpenCl.ProfilingCommandEnd);
        return ((double)t1 - t0) / 1e6;
    }

    private static ulong ProfilingTime(IntPtr handle, uint which)
    {
        ulong value;
        OpenClException.ThrowIfFailed(OpenCl.clGetEventProfilingInfo(handle, which, sizeof(ulong), &value, out _));
        return value;
    }

    protected override void ReleaseDevice()
    {
        IntPtr context = Interlocked.Exchange(ref _context, IntPtr.Zero);
        if (context != IntPtr.Zero) OpenCl.clReleaseContext(context);
    }

    /// <summary>An in-order OpenCL command queue with profiling; CLBlast is given the queue per call, OpenBLAS
    /// works on the buffers mapped through it.</summary>
    private sealed class OpenClStream(OpenClDevice device, IntPtr queue) : ComputeStream(device)
    {
        private readonly OpenClDevice _device = device;
        private IntPtr _queue = queue;

        public IntPtr Queue => _queue;

        protected override void WriteMemory(nint handle, long byteOffset, void* source, long bytes, bool wait) =>
            OpenClException.ThrowIfFailed(OpenCl.clEnqueueWriteBuffer(Live(), handle, wait ? 1u : 0u, (nuint)byteOffset, (nuint)bytes, source, 0, null, null));

        protected override void ReadMemory(nint handle, long byteOffset, void* destination, long bytes, bool wait) =>
            OpenClException.ThrowIfFailed(OpenCl.clEnqueueReadBuffer(Live(), handle, wait ? 1u : 0u, (nuint)byteOffset, (nuint)bytes, destination, 0, null, null));

        protected override void FillMemory(nint handle, uint pattern, long count) =>
            OpenClException.ThrowIfFailed(OpenCl.clEnqueueFillBuffer(Live(), handle, &pattern, sizeof(uint), 0, (nuint)(count * sizeof(uint)), 0, null, null));

        private IntPtr Live()
        {
            IntPtr queue = _queue;
            ObjectDisposedException.ThrowIf(queue == IntPtr.Zero, this);
            return queue;
        }

        protected override void LaunchCore(Kernel kernel, Dim3 grid, Dim3 block, in KernelArguments arguments, int sharedMemoryBytes)
        {
            if (kernel is not OpenClKernel cl || !ReferenceEquals(cl.Device, _device))
                throw new ArgumentException($"kernel {kernel} was not compiled for this device", nameof(kernel));
            IntPtr queue = Live();
            nuint* global = stackalloc nuint[3] { (nuint)grid.X * block.X, (nuint)grid.Y * block.Y, (nuint)grid.Z * block.Z };
            nuint* local = stackalloc nuint[3] { block.X, block.Y, block.Z };
            lock (_device._launchGate)
            {
                fixed (byte* data = &Unsafe.AsRef(in arguments.Data))
                {
                    for (int i = 0; i < arguments.Count; i++)
                    {
                        int status = OpenCl.clSetKernelArg(cl.Handle, (uint)i, (nuint)arguments.SizeOf(i), data + arguments.OffsetOf(i));
                        if (status != OpenCl.Success)
                            throw OpenClException.Create(status, $"clSetKernelArg({kernel}, argument {i}, {arguments.SizeOf(i)} bytes)", "");
                    }
                }
                if (cl.Signature.UsesDynamicSharedMemory)
                {
                    // OpenCL's dynamic shared memory is a __local pointer argument after the declared ones,
                    // set by size with no value. A kernel that declares it always gets at least one element.
                    uint index = (uint)arguments.Count;
                    int status = OpenCl.clSetKernelArg(cl.Handle, index, (nuint)Math.Max(sharedMemoryBytes, 4), null);
                    if (status != OpenCl.Success)
                        throw OpenClException.Create(status, $"clSetKernelArg({kernel}, dynamic shared memory, {sharedMemoryBytes} bytes)", "");
                }
                int launched = OpenCl.clEnqueueNDRangeKernel(queue, cl.Handle, 3, null, global, local, 0, null, null);
                if (launched != OpenCl.Success)
                    throw OpenClException.Create(launched, $"clEnqueueNDRangeKernel({kernel}, grid {grid}, block {block})", "");
            }
        }

        private static ClBlastTranspose Op(MatrixOp op) => op == MatrixOp.None ? ClBlastTranspose.No : ClBlastTranspose.Yes;

        protected override void GemmCore(MatrixOp transA, MatrixOp transB, int m, int n, int k,
            float alpha, DeviceBuffer<float> a, long aOffset, int lda,
            DeviceBuffer<float> b, long bOffset, int ldb,
            float beta, DeviceBuffer<float> c, long cOffset, int ldc)
        {
            if (_device.GemmsOnHost)
            {
                GemmOnHost(transA, transB, m, n, k, alpha, a, aOffset, lda, 0, b, bOffset, ldb, 0, beta, c, cOffset, ldc, 0, 1);
                return;
            }
            NativeLibraries.Load(NativeLibraryId.ClBlast);
            IntPtr queue = Live();
            ClBlastException.ThrowIfFailed(ClBlast.CLBlastSgemm(ClBlastLayout.ColMajor, Op(transA), Op(transB),
                (nuint)m, (nuint)n, (nuint)k, alpha, a.Handle, (nuint)aOffset, (nuint)lda, b.Handle, (nuint)bOffset, (nuint)ldb,
                beta, c.Handle, (nuint)cOffset, (nuint)ldc, &queue, null));
        }

        protected override void GemmStridedBatchedCore(MatrixOp transA, MatrixOp transB, int m, int n, int k,
            float alpha, DeviceBuffer<float> a, long aOffset, int lda, long strideA,
            DeviceBuffer<float> b, long bOffset, int ldb, long strideB,
            float beta, DeviceBuffer<float> c, long cOffset, int ldc, long strideC, int batchCount)
        {
            if (_device.GemmsOnHost)
            {
                GemmOnHost(transA, transB, m, n, k, alpha, a, aOffset, lda, strideA, b, bOffset, ldb, strideB, beta, c, cOffset, ldc, strideC, batchCount);
                return;
            }
            NativeLibraries.Load(NativeLibraryId.ClBlast);
            IntPtr queue = Live();
            ClBlastException.ThrowIfFailed(ClBlast.CLBlastSgemmStridedBatched(ClBlastLayout.ColMajor, Op(transA), Op(transB),
                (nuint)m, (nuint)n, (nuint)k, alpha, a.Handle, (nuint)aOffset, (nuint)lda, (nuint)strideA,
                b.Handle, (nuint)bOffset, (nuint)ldb, (nuint)strideB, beta, c.Handle, (nuint)cOffset, (nuint)ldc, (nuint)strideC,
                (nuint)batchCount, &queue, null));
        }

        private static CblasTranspose CblasOp(MatrixOp op) => op == MatrixOp.None ? CblasTranspose.No : CblasTranspose.Yes;

        private void LoadHostGemm() =>
            NativeLibraries.Load(_device._gemm == OpenClGemmProvider.OneDnn ? NativeLibraryId.OneDnn : NativeLibraryId.OpenBlas);

        /// <summary>One column-major SGEMM (cuBLAS's semantics) by the device's host provider. oneDNN's is row-major:
        /// column-major C = op(A)·op(B) is row-major Cᵀ = op(B)ᵀ·op(A)ᵀ, and a column-major matrix read row-major is
        /// its transpose, so the operands swap places and keep their transpose flags.</summary>
        private void HostSgemm(MatrixOp transA, MatrixOp transB, int m, int n, int k, float alpha, float* a, int lda,
            float* b, int ldb, float beta, float* c, int ldc)
        {
            if (_device._gemm != OpenClGemmProvider.OneDnn)
            {
                OpenBlas.cblas_sgemm(CblasLayout.ColMajor, CblasOp(transA), CblasOp(transB), m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
                return;
            }
            byte ta = transA == MatrixOp.None ? (byte)'N' : (byte)'T', tb = transB == MatrixOp.None ? (byte)'N' : (byte)'T';
            int status = OneDnn.dnnl_sgemm(tb, ta, n, m, k, alpha, b, ldb, a, lda, beta, c, ldc);
            // The message is built only on failure: a forward pass allocates no managed memory.
            if (status != 0) throw new AlexNetException($"dnnl_sgemm({m}×{n}×{k}) failed with dnnl_status_t {status}");
        }

        /// <summary>
        /// The GEMMs on the host's cores, in queue order. The blocking maps return once everything queued
        /// before them on this in-order queue has finished; the unmaps are queued, so work queued after the
        /// GEMM runs after them and sees its result. The host therefore waits for the queue at every GEMM,
        /// which costs nothing that matters on a device whose compute units are the host's own cores: they
        /// would otherwise be running the GEMM's kernels. Each buffer is mapped once, for reading and writing
        /// when it is C, even when it is passed as two operands.
        /// </summary>
        private void GemmOnHost(MatrixOp transA, MatrixOp transB, int m, int n, int k,
            float alpha, DeviceBuffer<float> a, long aOffset, int lda, long strideA,
            DeviceBuffer<float> b, long bOffset, int ldb, long strideB,
            float beta, DeviceBuffer<float> c, long cOffset, int ldc, long strideC, int batchCount)
        {
            LoadHostGemm();
            IntPtr queue = Live();
            Span<nint> handles = stackalloc nint[3];
            Span<nint> pointers = stackalloc nint[3];
            int mapped = 0, unmapError = OpenCl.Success;
            try
            {
                // C first, so a buffer that is also A or B is mapped for writing.
                float* pc = Map(queue, c, OpenCl.MapRead | OpenCl.MapWrite, handles, pointers, ref mapped);
                float* pa = Map(queue, a, OpenCl.MapRead, handles, pointers, ref mapped);
                float* pb = Map(queue, b, OpenCl.MapRead, handles, pointers, ref mapped);
                for (int i = 0; i < batchCount; i++)
                {
                    HostSgemm(transA, transB, m, n, k,
                        alpha, pa + aOffset + i * strideA, lda, pb + bOffset + i * strideB, ldb,
                        beta, pc + cOffset + i * strideC, ldc);
                }
            }
            finally
            {
                for (int i = 0; i < mapped; i++)
                {
                    int status = OpenCl.clEnqueueUnmapMemObject(queue, handles[i], (void*)pointers[i], 0, null, null);
                    if (unmapError == OpenCl.Success) unmapError = status;
                }
            }
            OpenClException.ThrowIfFailed(unmapError, "clEnqueueUnmapMemObject(GEMM operand)");
        }

        // Host scratch of the mixed-precision path: floats for A, B and C, grown to the largest GEMM seen and
        // kept (native memory, so a pass allocates nothing managed); freed with the stream.
        private float* _scratch;
        private long _scratchFloats;

        private float* Scratch(long floats)
        {
            if (floats > _scratchFloats)
            {
                NativeMemory.Free(_scratch);
                _scratch = null;
                _scratchFloats = 0;
                _scratch = (float*)NativeMemory.Alloc((nuint)floats, sizeof(float));
                _scratchFloats = floats;
            }
            return _scratch;
        }

        /// <summary>How many elements, from its first, an operand of <paramref name="rows"/>×<paramref name="columns"/>
        /// (stored, column-major, leading dimension <paramref name="ld"/>) spans over the batch.</summary>
        private static long Span(int rows, int columns, int ld, long stride, int batchCount) =>
            (long)(batchCount - 1) * stride + (long)(columns - 1) * ld + rows;

        /// <summary>
        /// TF32 and 16-bit GEMMs when the host GEMM (oneDNN or OpenBLAS) runs them on mapped buffers: each operand's
        /// span is converted to floats (16-bit values exactly; FP32 values of a TF32 GEMM rounded to TF32), SGEMM runs on the floats,
        /// and a 16-bit C gets each of its elements rounded once. Products of 11-bit (and 8-bit) significands are
        /// exact in FP32, so this is what tensor cores compute up to the order of the FP32 additions: the
        /// precisions' accuracy is measured here. CLBlast devices have no such path (<see cref="SupportsGemm"/>).
        /// </summary>
        protected override void GemmExCore(in GemmCall call)
        {
            LoadHostGemm();
            IntPtr queue = Live();
            // A 16-bit C: its floats are computed in scratch and rounded once into it.
            bool sixteenBitC = call.CFormat != ElementFormat.Float32;
            int aRows = call.TransA == MatrixOp.None ? call.M : call.K, aColumns = call.TransA == MatrixOp.None ? call.K : call.M;
            int bRows = call.TransB == MatrixOp.None ? call.K : call.N, bColumns = call.TransB == MatrixOp.None ? call.N : call.K;
            long aSpan = Span(aRows, aColumns, call.Lda, call.StrideA, call.BatchCount);
            long bSpan = Span(bRows, bColumns, call.Ldb, call.StrideB, call.BatchCount);
            long cSpan = Span(call.M, call.N, call.Ldc, call.StrideC, call.BatchCount);
            Span<nint> handles = stackalloc nint[3];
            Span<nint> pointers = stackalloc nint[3];
            int mapped = 0, unmapError = OpenCl.Success;
            try
            {
                byte* pc = (byte*)Map(queue, call.C, OpenCl.MapRead | OpenCl.MapWrite, handles, pointers, ref mapped);
                byte* pa = (byte*)Map(queue, call.A, OpenCl.MapRead, handles, pointers, ref mapped);
                byte* pb = (byte*)Map(queue, call.B, OpenCl.MapRead, handles, pointers, ref mapped);
                float* scratch = Scratch(aSpan + bSpan + (sixteenBitC ? cSpan : 0));
                float* fa = scratch, fb = scratch + aSpan;
                Widen(pa + call.AOffset * call.A.ElementSize, fa, aSpan, call.Format, call.Math);
                Widen(pb + call.BOffset * call.B.ElementSize, fb, bSpan, call.Format, call.Math);
                // C: the floats themselves when FP32 (TF32 math), else scratch holding C's floats when beta reads them.
                float* fc = sixteenBitC ? fb + bSpan : (float*)(pc + call.COffset * sizeof(float));
                if (sixteenBitC && call.Beta != 0f) Widen(pc + call.COffset * call.C.ElementSize, fc, cSpan, call.CFormat, GemmMath.Default);
                for (int i = 0; i < call.BatchCount; i++)
                {
                    HostSgemm(call.TransA, call.TransB, call.M, call.N, call.K,
                        call.Alpha, fa + i * call.StrideA, call.Lda, fb + i * call.StrideB, call.Ldb,
                        call.Beta, fc + i * call.StrideC, call.Ldc);
                }
                if (sixteenBitC)
                {
                    // Only C's own elements: its span may cross elements of other matrices (a chunk of a wider row).
                    ushort* c16 = (ushort*)pc + call.COffset;
                    for (int i = 0; i < call.BatchCount; i++)
                    for (int column = 0; column < call.N; column++)
                    {
                        long start = i * call.StrideC + (long)column * call.Ldc;
                        ElementFormats.FromFloat(new ReadOnlySpan<float>(fc + start, call.M), new Span<ushort>(c16 + start, call.M), call.CFormat);
                    }
                }
            }
            finally
            {
                for (int i = 0; i < mapped; i++)
                {
                    int status = OpenCl.clEnqueueUnmapMemObject(queue, handles[i], (void*)pointers[i], 0, null, null);
                    if (unmapError == OpenCl.Success) unmapError = status;
                }
            }
            OpenClException.ThrowIfFailed(unmapError, "clEnqueueUnmapMemObject(GEMM operand)");
        }

        /// <summary><paramref name="count"/> operand elements at <paramref name="source"/> as floats: 16-bit values
        /// exactly, FP32 ones rounded to TF32 for TF32 math (else copied).</summary>
        private static void Widen(byte* source, float* destination, long count, ElementFormat format, GemmMath math)
        {
            for (long start = 0; start < count; start += int.MaxValue)
            {
                int length = (int)Math.Min(int.MaxValue, count - start);
                var to = new Span<float>(destination + start, length);
                if (format != ElementFormat.Float32)
                {
                    ElementFormats.ToFloat(new ReadOnlySpan<ushort>((ushort*)source + start, length), to, format);
                }
                else
                {
                    var from = new ReadOnlySpan<float>((float*)source + start, length);
                    if (math == GemmMath.Tf32)
                        for (int i = 0; i < length; i++) to[i] = ElementFormats.RoundToTf32(from[i]);
                    else
                        from.CopyTo(to);
                }
            }
        }

        /// <summary>Maps the whole of <paramref name="buffer"/> (a no-copy operation where buffers live in host
        /// memory), or returns its mapping when an earlier operand of the same GEMM mapped it.</summary>
        private static float* Map(IntPtr queue, DeviceBuffer buffer, ulong flags, Span<nint> handles, Span<nint> pointers, ref int mapped)
        {
            nint handle = buffer.Handle;
            for (int i = 0; i < mapped; i++)
                if (handles[i] == handle) return (float*)pointers[i];
            void* pointer = OpenCl.clEnqueueMapBuffer(queue, handle, 1, flags, 0, (nuint)buffer.SizeInBytes, 0, null, null, out int error);
            // The message is built only on failure: a forward pass allocates no managed memory.
            if (error != OpenCl.Success) throw OpenClException.Create(error, $"clEnqueueMapBuffer({buffer.SizeInBytes} bytes for a GEMM)", "");
            handles[mapped] = handle;
            pointers[mapped] = (nint)pointer;
            mapped++;
            return (float*)pointer;
        }

        public override void Synchronize() => OpenClException.ThrowIfFailed(OpenCl.clFinish(Live()));

        public override void Record(DeviceEvent @event)
        {
            if (@event is not OpenClEvent e || !ReferenceEquals(e.Device, _device))
                throw new ArgumentException("an event of another device or backend", nameof(@event));
            IntPtr handle;
            OpenClException.ThrowIfFailed(OpenCl.clEnqueueMarkerWithWaitList(Live(), 0, null, &handle));
            e.Replace(handle);
        }

        public override void Wait(DeviceEvent @event)
        {
            if (@event is not OpenClEvent e || !ReferenceEquals(e.Device, _device))
                throw new ArgumentException("an event of another device or backend", nameof(@event));
            if (!e.IsRecorded) throw new ArgumentException("waiting on an event that was never recorded", nameof(@event));
            IntPtr handle = e.Handle;
            OpenClException.ThrowIfFailed(OpenCl.clEnqueueBarrierWithWaitList(Live(), 1, &handle, null));
        }

        // This backend captures nothing: every pass runs launch by launch, whatever asks for a graph.
        public override string? GraphsUnsupportedReason => "OpenCL has no graphs";

        protected override void Dispose(bool disposing)
        {
            IntPtr queue = Interlocked.Exchange(ref _queue, IntPtr.Zero);
            if (queue == IntPtr.Zero) return;
            OpenCl.clFinish(queue);
            OpenCl.clReleaseCommandQueue(queue);
            NativeMemory.Free(_scratch);
            _scratch = null;
            _scratchFloats = 0;
        }
    }

    // ---- device queries ----

    private static string PlatformText(IntPtr platform, uint parameter)
    {
        Span<byte> text = stackalloc byte[1024];
        fixed (byte* p = text) OpenClException.ThrowIfFailed(OpenCl.clGetPlatformInfo(platform, parameter, (nuint)text.Length, p, out _));
        return NativeText.FromUtf8(text).Trim();
    }

    private static string DeviceText(IntPtr device, uint parameter)
    {
        Span<byte> text = stackalloc byte[1024];
        fixed (byte* p = text) OpenClException.ThrowIfFailed(OpenCl.clGetDeviceInfo(device, parameter, (nuint)text.Length, p, out _));
        return NativeText.FromUtf8(text).Trim();
    }

    private static T DeviceValue<T>(IntPtr device, uint parameter) where T : unmanaged
    {
        T value = default;
        OpenClException.ThrowIfFailed(OpenCl.clGetDeviceInfo(device, parameter, (nuint)sizeof(T), &value, out _));
        return value;
    }

    private sealed class OpenClModule(OpenClDevice device, IntPtr program, KernelSource source, string key, bool fromCache, TimeSpan time)
        : KernelModule(device, source, key, fromCache, time)
    {
        private IntPtr _program = program;

        protected override Kernel CreateKernel(KernelSignature signature)
        {
            string kernelName = signature.Kernel;
            ObjectDisposedException.ThrowIf(_program == IntPtr.Zero, this);
            byte[] nameBytes = NativeText.NulTerminated(kernelName);
            IntPtr kernel;
            int error;
            fixed (byte* p = nameBytes) kernel = OpenCl.clCreateKernel(_program, p, out error);
            if (error == -46) // CL_INVALID_KERNEL_NAME
                throw new AlexNetException($"kernel '{kernelName}' is not defined in {SourceName} (is it declared KERNEL?)");
            OpenClException.ThrowIfFailed(error, $"clCreateKernel({SourceName}, {kernelName})");
            return new OpenClKernel(this, signature, device, kernel);
        }

        protected override void ReleaseModule()
        {
            IntPtr program = Interlocked.Exchange(ref _program, IntPtr.Zero);
            if (program != IntPtr.Zero) OpenCl.clReleaseProgram(program);
        }
    }

    private sealed class OpenClKernel(KernelModule module, KernelSignature signature, OpenClDevice device, IntPtr handle) : Kernel(module, signature)
    {
        public new OpenClDevice Device { get; } = device;

        public IntPtr Handle { get; private set; } = handle;

        internal override void Release()
        {
            if (Handle != IntPtr.Zero) OpenCl.clReleaseKernel(Handle);
            Handle = IntPtr.Zero;
        }
    }

    /// <summary>An OpenCL marker is a new event object each time it is enqueued: recording again releases
    /// the previous one and keeps the new.</summary>
    private sealed class OpenClEvent(OpenClDevice device, bool timing) : DeviceEvent(device, timing)
    {
        public IntPtr Handle { get; private set; }

        public void Replace(IntPtr handle)
        {
            IntPtr previous = Handle;
            Handle = handle;
            IsRecorded = true;
            if (previous != IntPtr.Zero) OpenCl.clReleaseEvent(previous);
        }

        protected override void SynchronizeCore()
        {
            IntPtr handle = Handle;
            OpenClException.ThrowIfFailed(OpenCl.clWaitForEvents(1, &handle));
        }

        protected override void ReleaseEvent()
        {
            IntPtr handle = Handle;
            Handle = IntPtr.Zero;
            if (handle != IntPtr.Zero) OpenCl.clReleaseEvent(handle);
        }
    }
}
