using System.Runtime.InteropServices;
using System.Runtime.CompilerServices;

namespace AlexNet.Cuda.Interop;

/// <summary>
/// OpenCL 1.2 (through the ICD loader, libOpenCL). Every object (<c>cl_platform_id</c>, <c>cl_mem</c>, …) is
/// an <see cref="IntPtr"/>; <c>cl_bool</c>/<c>cl_uint</c> are <see cref="uint"/>, bitfields <see cref="ulong"/>.
/// </summary>
public static unsafe partial class OpenCl
{
    private const string Lib = NativeLibraries.OpenClName;

    // Platforms and devices
    [LibraryImport(Lib)] public static partial int clGetPlatformIDs(uint entries, IntPtr* platforms, out uint count);
    [LibraryImport(Lib)] public static partial int clGetPlatformInfo(IntPtr platform, uint parameter, nuint size, void* value, out nuint sizeReturned);
    [LibraryImport(Lib)] public static partial int clGetDeviceIDs(IntPtr platform, ulong deviceType, uint entries, IntPtr* devices, out uint count);
    [LibraryImport(Lib)] public static partial int clGetDeviceInfo(IntPtr device, uint parameter, nuint size, void* value, out nuint sizeReturned);

    // Context and queue
    [LibraryImport(Lib)] public static partial IntPtr clCreateContext(IntPtr* properties, uint deviceCount, IntPtr* devices, IntPtr notify, IntPtr userData, out int error);
    [LibraryImport(Lib)] public static partial int clReleaseContext(IntPtr context);
    [LibraryImport(Lib)] public static partial IntPtr clCreateCommandQueue(IntPtr context, IntPtr device, ulong properties, out int error);
    [LibraryImport(Lib)] public static partial int clReleaseCommandQueue(IntPtr queue);
    [LibraryImport(Lib)] public static partial int clFlush(IntPtr queue);
    [LibraryImport(Lib)] public static partial int clFinish(IntPtr queue);

    // Programs and kernels
    [LibraryImport(Lib)] public static partial IntPtr clCreateProgramWithSource(IntPtr context, uint count, byte** strings, nuint* lengths, out int error);
    [LibraryImport(Lib)]
    public static partial IntPtr clCreateProgramWithBinary(IntPtr context, uint deviceCount, IntPtr* devices, nuint* lengths,
        byte** binaries, int* binaryStatus, out int error);
    [LibraryImport(Lib)] public static partial int clBuildProgram(IntPtr program, uint deviceCount, IntPtr* devices, byte* options, IntPtr notify, IntPtr userData);
    [LibraryImport(Lib)] public static partial int clGetProgramBuildInfo(IntPtr program, IntPtr device, uint parameter, nuint size, void* value, out nuint sizeReturned);
    [LibraryImport(Lib)] public static partial int clGetProgramInfo(IntPtr program, uint parameter, nuint size, void* value, out nuint sizeReturned);
    [LibraryImport(Lib)] public static partial int clReleaseProgram(IntPtr program);
    [LibraryImport(Lib)] public static partial IntPtr clCreateKernel(IntPtr program, byte* name, out int error);
    [LibraryImport(Lib)] public static partial int clReleaseKernel(IntPtr kernel);
    [LibraryImport(Lib)] public static partial int clSetKernelArg(IntPtr kernel, uint index, nuint size, void* value);
    [LibraryImport(Lib)] public static partial int clGetKernelWorkGroupInfo(IntPtr kernel, IntPtr device, uint parameter, nuint size, void* value, out nuint sizeReturned);

    // Buffers
    [LibraryImport(Lib)] public static partial IntPtr clCreateBuffer(IntPtr context, ulong flags, nuint size, void* hostPointer, out int error);
    [LibraryImport(Lib)] public static partial int clReleaseMemObject(IntPtr buffer);
    [LibraryImport(Lib)]
    public static partial int clEnqueueWriteBuffer(IntPtr queue, IntPtr buffer, uint blocking, nuint offset, nuint size, void* source,
        uint waitCount, IntPtr* waitList, IntPtr* @event);
    [LibraryImport(Lib)]
    public static partial int clEnqueueReadBuffer(IntPtr queue, IntPtr buffer, uint blocking, nuint offset, nuint size, void* destination,
        uint waitCount, IntPtr* waitList, IntPtr* @event);
    [LibraryImport(Lib)]
    public static partial int clEnqueueCopyBuffer(IntPtr queue, IntPtr source, IntPtr destination, nuint sourceOffset, nuint destinationOffset,
        nuint size, uint waitCount, IntPtr* waitList, IntPtr* @event);
    [LibraryImport(Lib)]
    public static partial int clEnqueueFillBuffer(IntPtr queue, IntPtr buffer, void* pattern, nuint patternSize, nuint offset, nuint size,
        uint waitCount, IntPtr* waitList, IntPtr* @event);

    [LibraryImport(Lib)]
    public static partial void* clEnqueueMapBuffer(IntPtr queue, IntPtr buffer, uint blocking, ulong flags, nuint offset, nuint size,
        uint waitCount, IntPtr* waitList, IntPtr* @event, out int error);
    [LibraryImport(Lib)]
    public static partial int clEnqueueUnmapMemObject(IntPtr queue, IntPtr buffer, void* mapped, uint waitCount, IntPtr* waitList, IntPtr* @event);

    // Launch and events
    [LibraryImport(Lib)]
    public static partial int clEnqueueNDRangeKernel(IntPtr queue, IntPtr kernel, uint dimensions, nuint* globalOffset, nuint* globalSize,
        nuint* localSize, uint waitCount, IntPtr* waitList, IntPtr* @event);
    [LibraryImport(Lib)] public static partial int clEnqueueMarkerWithWaitList(IntPtr queue, uint waitCount, IntPtr* waitList, IntPtr* @event);
    [LibraryImport(Lib)] public static partial int clEnqueueBarrierWithWaitList(IntPtr queue, uint waitCount, IntPtr* waitList, IntPtr* @event);
    [LibraryImport(Lib)] public static partial int clWaitForEvents(uint count, IntPtr* events);
    [LibraryImport(Lib)] public static partial int clGetEventProfilingInfo(IntPtr @event, uint parameter, nuint size, void* value, out nuint sizeReturned);
    [LibraryImport(Lib)] public static partial int clReleaseEvent(IntPtr @event);

    public const int Success = 0;
    public const int DeviceNotFound = -1;
    public const int BuildProgramFailure = -11;
    public const int PlatformNotFoundKhr = -1001;

    public const ulong DeviceTypeAll = 0xFFFFFFFF;
    public const uint PlatformVersion = 0x0901;
    public const uint PlatformName = 0x0902;
    public const uint PlatformVendor = 0x0903;
    public const uint DeviceType = 0x1000;
    public const uint DeviceMaxComputeUnits = 0x1002;
    public const uint DeviceMaxWorkGroupSize = 0x1004;
    public const uint DeviceMaxClockFrequency = 0x100C;
    public const uint DeviceMaxMemAllocSize = 0x1010;
    public const uint DeviceGlobalMemCacheSize = 0x101E;
    public const uint DeviceGlobalMemSize = 0x101F;
    public const uint DeviceLocalMemSize = 0x1023;
    public const uint DeviceName = 0x102B;
    public const uint DeviceVendor = 0x102C;
    public const uint DriverVersion = 0x102D;
    public const uint DeviceVersion = 0x102F;
    public const uint DeviceHostUnifiedMemory = 0x1035;
    public const ulong DeviceTypeCpu = 1 << 1;
    public const ulong DeviceTypeGpu = 1 << 2;
    public const ulong QueueProfilingEnable = 1 << 1;
    public const ulong MemReadWrite = 1 << 0;
    public const ulong MapRead = 1 << 0;
    public const ulong MapWrite = 1 << 1;
    public const uint ProgramBinarySizes = 0x1165;
    public const uint ProgramBinaries = 0x1166;
    public const uint ProgramBuildLog = 0x1183;
    public const uint KernelWorkGroupSize = 0x11B0;
    public const uint ProfilingCommandQueued = 0x1280;
    public const uint ProfilingCommandStart = 0x1282;
    public const uint ProfilingCommandEnd = 0x1283;

    /// <summary>The error code's name in <c>cl.h</c>.</summary>
    public static string ErrorName(int code) => code switch
    {
        0 => "CL_SUCCESS",
        -1 => "CL_DEVICE_NOT_FOUND",
        -2 => "CL_DEVICE_NOT_AVAILABLE",
        -3 => "CL_COMPILER_NOT_AVAILABLE",
        -4 => "CL_MEM_OBJECT_ALLOCATION_FAILURE",
        -5 => "CL_OUT_OF_RESOURCES",
        -6 => "CL_OUT_OF_HOST_MEMORY",
        -7 => "CL_PROFILING_INFO_NOT_AVAILABLE",
        -8 => "CL_MEM_COPY_OVERLAP",
        -11 => "CL_BUILD_PROGRAM_FAILURE",
        -12 => "CL_MAP_FAILURE",
        -13 => "CL_MISALIGNED_SUB_BUFFER_OFFSET",
        -14 => "CL_EXEC_STATUS_ERROR_FOR_EVENTS_IN_WAIT_LIST",
        -15 => "CL_COMPILE_PROGRAM_FAILURE",
        -17 => "CL_LINK_PROGRAM_FAILURE",
        -30 => "CL_INVALID_VALUE",
        -31 => "CL_INVALID_DEVICE_TYPE",
        -32 => "CL_INVALID_PLATFORM",
        -33 => "CL_INVALID_DEVICE",
        -34 => "CL_INVALID_CONTEXT",
        -35 => "CL_INVALID_QUEUE_PROPERTIES",
        -36 => "CL_INVALID_COMMAND_QUEUE",
        -37 => "CL_INVALID_HOST_PTR",
        -38 => "CL_INVALID_MEM_OBJECT",
        -42 => "CL_INVALID_BINARY",
        -43 => "CL_INVALID_BUILD_OPTIONS",
        -44 => "CL_INVALID_PROGRAM",
        -45 => "CL_INVALID_PROGRAM_EXECUTABLE",
        -46 => "CL_INVALID_KERNEL_NAME",
        -47 => "CL_INVALID_KERNEL_DEFINITION",
        -48 => "CL_INVALID_KERNEL",
        -49 => "CL_INVALID_ARG_INDEX",
        -50 => "CL_INVALID_ARG_VALUE",
        -51 => "CL_INVALID_ARG_SIZE",
        -52 => "CL_INVALID_KERNEL_ARGS",
        -53 => "CL_INVALID_WORK_DIMENSION",
        -54 => "CL_INVALID_WORK_GROUP_SIZE",
        -55 => "CL_INVALID_WORK_ITEM_SIZE",
        -56 => "CL_INVALID_GLOBAL_OFFSET",
        -57 => "CL_INVALID_EVENT_WAIT_LIST",
        -58 => "CL_INVALID_EVENT",
        -59 => "CL_INVALID_OPERATION",
        -61 => "CL_INVALID_BUFFER_SIZE",
        -63 => "CL_INVALID_GLOBAL_WORK_SIZE",
        -1001 => "CL_PLATFORM_NOT_FOUND_KHR",
        _ => "CL_UNKNOWN_ERROR",
    };
}

/// <summary>An OpenCL call failed. A build failure carries the compiler log.</summary>
public sealed class OpenClException : NativeCallException
{
    public string CompilerLog { get; }

    private OpenClException(string message, string log) : base(message) => CompilerLog = log;

    public static void ThrowIfFailed(int status, [CallerArgumentExpression(nameof(status))] string call = "")
    {
        if (status != OpenCl.Success) throw Create(status, call, "");
    }

    public static OpenClException Create(int status, string call, string log)
    {
        string name = OpenCl.ErrorName(status);
        string message = $"{OneLine(call)} failed: {name} ({status})";
        if (status is -4 or -5 or -6) message += ". The device or host is out of memory: use a smaller batch";
        if (log.Length > 0) message += $"; compiler log:{Environment.NewLine}{log.TrimEnd()}";
        return new OpenClException(message, log) { Call = call, Status = status, StatusName = name };
    }
}
