using System.Runtime.InteropServices;

namespace AlexNet.Cuda.Interop;

/// <summary>
/// The CUDA driver API (libcuda). Entry points carry the versioned names the headers map to
/// (<c>cuMemAlloc_v2</c>, not <c>cuMemAlloc</c>): the unversioned symbols are the old 32-bit ABI.
/// Handles (<c>CUcontext</c>, <c>CUmodule</c>, …) are <see cref="IntPtr"/>; device pointers are
/// <see cref="ulong"/> (<c>CUdeviceptr</c> is 64-bit on every supported platform).
/// </summary>
public static unsafe partial class CudaDriver
{
    private const string Lib = NativeLibraries.CudaDriverName;

    // Initialisation and version
    [LibraryImport(Lib)] public static partial CudaResult cuInit(uint flags);
    [LibraryImport(Lib)] public static partial CudaResult cuDriverGetVersion(out int version);
    [LibraryImport(Lib)] public static partial CudaResult cuGetErrorName(CudaResult error, out byte* name);
    [LibraryImport(Lib)] public static partial CudaResult cuGetErrorString(CudaResult error, out byte* text);

    // Devices
    [LibraryImport(Lib)] public static partial CudaResult cuDeviceGetCount(out int count);
    [LibraryImport(Lib)] public static partial CudaResult cuDeviceGet(out int device, int ordinal);
    [LibraryImport(Lib)] public static partial CudaResult cuDeviceGetName(byte* name, int length, int device);
    [LibraryImport(Lib)] public static partial CudaResult cuDeviceGetAttribute(out int value, CudaDeviceAttribute attribute, int device);
    [LibraryImport(Lib)] public static partial CudaResult cuDeviceTotalMem_v2(out nuint bytes, int device);

    // Contexts: the engine uses the device's primary context, the one the runtime API (and so
    // PyTorch in the same process) shares.
    [LibraryImport(Lib)] public static partial CudaResult cuDevicePrimaryCtxRetain(out IntPtr context, int device);
    [LibraryImport(Lib)] public static partial CudaResult cuDevicePrimaryCtxRelease_v2(int device);
    [LibraryImport(Lib)] public static partial CudaResult cuCtxSetCurrent(IntPtr context);
    [LibraryImport(Lib)] public static partial CudaResult cuCtxGetCurrent(out IntPtr context);
    [LibraryImport(Lib)] public static partial CudaResult cuCtxSynchronize();

    // Device memory
    [LibraryImport(Lib)] public static partial CudaResult cuMemGetInfo_v2(out nuint free, out nuint total);
    [LibraryImport(Lib)] public static partial CudaResult cuMemAlloc_v2(out ulong pointer, nuint bytes);
    [LibraryImport(Lib)] public static partial CudaResult cuMemFree_v2(ulong pointer);
    [LibraryImport(Lib)] public static partial CudaResult cuMemsetD8_v2(ulong destination, byte value, nuint count);
    [LibraryImport(Lib)] public static partial CudaResult cuMemsetD32_v2(ulong destination, uint value, nuint count);
    [LibraryImport(Lib)] public static partial CudaResult cuMemsetD8Async(ulong destination, byte value, nuint count, IntPtr stream);
    [LibraryImport(Lib)] public static partial CudaResult cuMemsetD32Async(ulong destination, uint value, nuint count, IntPtr stream);

    // Copies: synchronous and stream-ordered
    [LibraryImport(Lib)] public static partial CudaResult cuMemcpyHtoD_v2(ulong destination, void* source, nuint bytes);
    [LibraryImport(Lib)] public static partial CudaResult cuMemcpyDtoH_v2(void* destination, ulong source, nuint bytes);
    [LibraryImport(Lib)] public static partial CudaResult cuMemcpyDtoD_v2(ulong destination, ulong source, nuint bytes);
    [LibraryImport(Lib)] public static partial CudaResult cuMemcpyHtoDAsync_v2(ulong destination, void* source, nuint bytes, IntPtr stream);
    [LibraryImport(Lib)] public static partial CudaResult cuMemcpyDtoHAsync_v2(void* destination, ulong source, nuint bytes, IntPtr stream);
    [LibraryImport(Lib)] public static partial CudaResult cuMemcpyDtoDAsync_v2(ulong destination, ulong source, nuint bytes, IntPtr stream);

    // Page-locked host memory: asynchronous copies only overlap with compute from such memory.
    [LibraryImport(Lib)] public static partial CudaResult cuMemHostAlloc(out void* pointer, nuint bytes, uint flags);
    [LibraryImport(Lib)] public static partial CudaResult cuMemFreeHost(void* pointer);

    // Streams and events
    [LibraryImport(Lib)] public static partial CudaResult cuStreamCreate(out IntPtr stream, uint flags);
    [LibraryImport(Lib)] public static partial CudaResult cuStreamDestroy_v2(IntPtr stream);
    [LibraryImport(Lib)] public static partial CudaResult cuStreamSynchronize(IntPtr stream);
    [LibraryImport(Lib)] public static partial CudaResult cuStreamWaitEvent(IntPtr stream, IntPtr @event, uint flags);
    [LibraryImport(Lib)] public static partial CudaResult cuEventCreate(out IntPtr @event, uint flags);
    [LibraryImport(Lib)] public static partial CudaResult cuEventDestroy_v2(IntPtr @event);
    [LibraryImport(Lib)] public static partial CudaResult cuEventRecord(IntPtr @event, IntPtr stream);
    [LibraryImport(Lib)] public static partial CudaResult cuEventSynchronize(IntPtr @event);
    [LibraryImport(Lib)] public static partial CudaResult cuEventElapsedTime(out float milliseconds, IntPtr start, IntPtr end);

    // Modules and kernels
    [LibraryImport(Lib)] public static partial CudaResult cuModuleLoadData(out IntPtr module, void* image);
    [LibraryImport(Lib)] public static partial CudaResult cuModuleLoadDataEx(out IntPtr module, void* image, uint optionCount, CudaJitOption* options, void** optionValues);
    [LibraryImport(Lib)] public static partial CudaResult cuModuleUnload(IntPtr module);
    [LibraryImport(Lib)] public static partial CudaResult cuModuleGetFunction(out IntPtr function, IntPtr module, byte* name);
    [LibraryImport(Lib)] public static partial CudaResult cuFuncGetAttribute(out int value, CudaFunctionAttribute attribute, IntPtr function);
    [LibraryImport(Lib)] public static partial CudaResult cuFuncSetAttribute(IntPtr function, CudaFunctionAttribute attribute, int value);
    [LibraryImport(Lib)]
    public static partial CudaResult cuLaunchKernel(IntPtr function,
        uint gridX, uint gridY, uint gridZ, uint blockX, uint blockY, uint blockZ,
        uint sharedMemoryBytes, IntPtr stream, void** kernelParams, void** extra);

    // Graphs: capture a stream's work once, replay it with one launch. cuStreamBeginCapture is a macro for
    // the _v2 entry point (the one that takes a capture mode); the others have a single version.
    [LibraryImport(Lib)] public static partial CudaResult cuStreamBeginCapture_v2(IntPtr stream, CudaStreamCaptureMode mode);
    [LibraryImport(Lib)] public static partial CudaResult cuStreamEndCapture(IntPtr stream, out IntPtr graph);
    [LibraryImport(Lib)] public static partial CudaResult cuStreamIsCapturing(IntPtr stream, out CudaStreamCaptureStatus status);
    [LibraryImport(Lib)] public static partial CudaResult cuGraphInstantiateWithFlags(out IntPtr graphExec, IntPtr graph, ulong flags);
    [LibraryImport(Lib)] public static partial CudaResult cuGraphLaunch(IntPtr graphExec, IntPtr stream);
    [LibraryImport(Lib)] public static partial CudaResult cuGraphExecDestroy(IntPtr graphExec);
    [LibraryImport(Lib)] public static partial CudaResult cuGraphDestroy(IntPtr graph);

    /// <summary>
    /// <c>cuFuncGetParamInfo(func, index, &amp;offset, &amp;size)</c>, the byte offset and size of a compiled
    /// kernel's parameter, which drivers export from CUDA 12.4 on. Looked up at run time rather than bound,
    /// so older drivers still load: returns null when the driver lacks it. An index past the last parameter
    /// gives <see cref="CudaResult.InvalidValue"/>.
    /// </summary>
    public static CudaResult? TryFuncGetParamInfo(IntPtr function, nuint index, out nuint offset, out nuint size)
    {
        offset = size = 0;
        nint entry = FuncGetParamInfoEntry.Value;
        if (entry == 0) return null;
        nuint o, s;
        CudaResult result = ((delegate* unmanaged<IntPtr, nuint, nuint*, nuint*, CudaResult>)entry)(function, index, &o, &s);
        offset = o;
        size = s;
        return result;
    }

    /// <summary>True when the loaded driver exports <c>cuFuncGetParamInfo</c> (CUDA 12.4 and later).</summary>
    public static bool HasFuncGetParamInfo => FuncGetParamInfoEntry.Value != 0;

    private static readonly Lazy<nint> FuncGetParamInfoEntry = new(() =>
        NativeLibraries.TryLoad(NativeLibraryId.CudaDriver, out IntPtr handle)
        && NativeLibrary.TryGetExport(handle, "cuFuncGetParamInfo", out nint entry) ? entry : 0);

    /// <summary>cuMemHostAlloc flag: memory usable by every context.</summary>
    public const uint MemHostAllocPortable = 0x01;

    /// <summary>cuStreamCreate flag: the stream does not synchronise with the legacy default stream.</summary>
    public const uint StreamNonBlocking = 0x01;

    /// <summary>cuEventCreate flag: the default event, which records timing.</summary>
    public const uint EventDefault = 0x0;

    /// <summary>cuEventCreate flag: no timing (cheaper, for pure ordering).</summary>
    public const uint EventDisableTiming = 0x2;

    /// <summary>The error's enum name (<c>CUDA_ERROR_NO_DEVICE</c>), from the driver when it can say.</summary>
    public static string ErrorName(CudaResult result)
    {
        try
        {
            if (cuGetErrorName(result, out byte* name) == CudaResult.Success && name != null)
                return Marshal.PtrToStringUTF8((IntPtr)name) ?? result.ToString();
        }
        catch (NativeLibraryNotFoundException) { }
        return $"CUDA_ERROR_{result}";
    }

    /// <summary>The driver's sentence for the error, or an empty string.</summary>
    public static string ErrorText(CudaResult result)
    {
        try
        {
            if (cuGetErrorString(result, out byte* text) == CudaResult.Success && text != null)
                return Marshal.PtrToStringUTF8((IntPtr)text) ?? "";
        }
        catch (NativeLibraryNotFoundException) { }
        return "";
    }
}

/// <summary><c>CUresult</c>: the codes the engine reacts to by name; any other value still round-trips.</summary>
public enum CudaResult
{
    Success = 0,
    InvalidValue = 1,
    OutOfMemory = 2,
    NotInitialized = 3,
    Deinitialized = 4,
    DeviceUnavailable = 46,
    NoDevice = 100,
    InvalidDevice = 101,
    InvalidImage = 200,
    InvalidContext = 201,
    NoBinaryForGpu = 209,
    UnsupportedPtxVersion = 222,
    InvalidPtx = 218,
    InvalidSource = 300,
    FileNotFound = 301,
    InvalidHandle = 400,
    NotFound = 500,
    NotReady = 600,
    IllegalAddress = 700,
    LaunchOutOfResources = 701,
    LaunchTimeout = 702,
    LaunchFailed = 719,
    SystemDriverMismatch = 803,
    CompatNotSupportedOnDevice = 804,
    StreamCaptureUnsupported = 900,
    StreamCaptureInvalidated = 901,
    StreamCaptureUnmatched = 903,
    StreamCaptureImplicit = 906,
    StreamCaptureWrongThread = 908,
    Unknown = 999,
}

/// <summary><c>CUdevice_attribute</c>: the attributes the engine reads.</summary>
public enum CudaDeviceAttribute
{
    MaxThreadsPerBlock = 1,
    MaxBlockDimX = 2,
    MaxGridDimX = 5,
    MaxSharedMemoryPerBlock = 8,
    WarpSize = 10,
    ClockRate = 13,
    MultiprocessorCount = 16,
    PciBusId = 33,
    MemoryClockRate = 36,
    GlobalMemoryBusWidth = 37,
    L2CacheSize = 38,
    MaxThreadsPerMultiprocessor = 39,
    ComputeCapabilityMajor = 75,
    ComputeCapabilityMinor = 76,
    MaxSharedMemoryPerMultiprocessor = 81,
    MaxSharedMemoryPerBlockOptin = 97,
}

/// <summary><c>CUfunction_attribute</c>.</summary>
public enum CudaFunctionAttribute
{
    MaxThreadsPerBlock = 0,
    SharedSizeBytes = 1,
    ConstSizeBytes = 2,
    LocalSizeBytes = 3,
    NumRegisters = 4,
    PtxVersion = 5,
    BinaryVersion = 6,
    MaxDynamicSharedSizeBytes = 8,
}

/// <summary><c>CUjit_option</c>: the options used to get the JIT's logs when loading PTX.</summary>
public enum CudaJitOption
{
    InfoLogBuffer = 3,
    InfoLogBufferSizeBytes = 4,
    ErrorLogBuffer = 5,
    ErrorLogBufferSizeBytes = 6,
}

/// <summary><c>CUstreamCaptureMode</c>.</summary>
public enum CudaStreamCaptureMode
{
    Global = 0,
    ThreadLocal = 1,
    Relaxed = 2,
}

/// <summary><c>CUstreamCaptureStatus</c>, what <c>cuStreamIsCapturing</c> reports.</summary>
public enum CudaStreamCaptureStatus
{
    None = 0,
    Active = 1,
    /// <summary>A capture that an error invalidated: it must still be ended (<c>cuStreamEndCapture</c>)
    /// before the stream can be used again.</summary>
    Invalidated = 2,
}
