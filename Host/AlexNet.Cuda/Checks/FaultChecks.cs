using System.Runtime.CompilerServices;
using AlexNet.Cuda.Devices;
using AlexNet.Cuda.Interop;
using AlexNet.Cuda.Reference;

namespace AlexNet.Cuda.Checks;

/// <summary>
/// Whether a bug in managed code after the device opened is still an ordinary exception: the native
/// libraries behind a device may install signal handlers over the runtime's (see <see cref="SignalHandlers"/>),
/// which made the first null dereference or division by zero of the process fatal. The handlers are read
/// first, so a replaced one fails the check with its owner's name instead of ending the process; only then
/// are the faults provoked, on the calling thread and on a pool thread (where images are decoded).
/// </summary>
public static class FaultChecks
{
    public const string Name = "device: a managed null dereference or division by zero stays an exception after the device opened";

    public static ComparisonResult ManagedFaultsStayExceptions(ComputeDevice device)
    {
        // Work that loads every native piece of the device first: a kernel module (the compiler) and a GEMM
        // (cuBLAS, CLBlast or OpenBLAS).
        using (KernelModule module = device.LoadModule("softmax.cu")) module.GetKernel("softmax_kernel1");
        using (DeviceBuffer<float> a = device.Upload<float>([1, 2, 3, 4]))
        using (DeviceBuffer<float> c = device.Allocate<float>(4))
        {
            device.Gemm(MatrixView.RowMajor(a, 2, 2), MatrixView.RowMajor(a, 2, 2), MatrixView.RowMajor(c, 2, 2));
            device.Synchronize();
        }

        IReadOnlyList<string> replaced = SignalHandlers.ReplacedFaultHandlers();
        if (replaced.Count > 0)
            return Fail($"the runtime's fault handlers were replaced ({string.Join(", ", replaced)}): a managed null dereference or division by zero would end the process");

        string? problem = ProvokeFaults() ?? Task.Run(ProvokeFaults).GetAwaiter().GetResult();
        return problem is null
            ? new ComparisonResult(true, 0, 0, -1, 0, $"a null dereference and a division by zero were caught on the calling thread and a pool thread; fault handlers: {SignalHandlers.FaultHandlerOwners()}")
            : Fail(problem);
    }

    private static ComparisonResult Fail(string detail) => new(false, 1, double.PositiveInfinity, -1, 0, detail);

    /// <summary>Null when both faults arrived as their managed exceptions.</summary>
    private static string? ProvokeFaults()
    {
        try
        {
            _ = LengthOf(null);
            return "reading through a null reference raised nothing";
        }
        catch (NullReferenceException)
        {
        }
        try
        {
            _ = Quotient(1, 0);
            return "an integer division by zero raised nothing";
        }
        catch (DivideByZeroException)
        {
        }
        return null;
    }

    // Not inlined, so the JIT cannot see the constant arguments and fold the faults away: they have to
    // come from the hardware, through the signal handlers.
    [MethodImpl(MethodImplOptions.NoInlining)]
    private static int LengthOf(string? text) => text!.Length;

    [MethodImpl(MethodImplOptions.NoInlining)]
    private static int Quotient(int a, int b) => a / b;
}
