using System.Text.RegularExpressions;

namespace AlexNet.Cuda.Compilation;

/// <summary>What a kernel parameter is, as far as passing it goes.</summary>
public enum KernelParameterKind
{
    /// <summary>A value passed by copy (<c>int</c>, <c>float</c>, <c>uint</c>, <c>ulong</c>, …).</summary>
    Scalar,

    /// <summary>A pointer to global memory: a <c>DeviceBuffer</c>'s handle.</summary>
    GlobalPointer,
}

/// <summary>One parameter of a kernel as the source declares it.</summary>
public readonly record struct KernelParameter(string Name, string Type, KernelParameterKind Kind, int Size)
{
    public override string ToString() => $"{Type} {Name}";
}

/// <summary>
/// A kernel's parameter list, read from its declaration in the kernel file itself
/// (<c>KERNEL void name(GLOBAL float* out, int n)</c>): the one declared signature both backends check
/// every launch against. A CUDA launch copies each argument from a pointer with the size the compiled
/// kernel expects, so an <c>int</c> passed for a <c>size_t</c> would silently read 4 bytes of the next
/// argument; OpenCL would report <c>CL_INVALID_ARG_SIZE</c> only for some mistakes. Checking the packed
/// argument sizes and kinds against this list turns every such slip into a one-line error on both.
/// </summary>
public sealed partial class KernelSignature
{
    private KernelSignature(string kernel, IReadOnlyList<KernelParameter> parameters, bool dynamicShared)
    {
        Kernel = kernel;
        Parameters = parameters;
        UsesDynamicSharedMemory = dynamicShared;
    }

    public string Kernel { get; }

    public IReadOnlyList<KernelParameter> Parameters { get; }

    /// <summary>True when the kernel declares <c>DYNAMIC_SHARED_PARAM(type, name)</c>: on OpenCL the
    /// dynamic shared memory is one more (<c>__local</c>) argument after the declared ones.</summary>
    public bool UsesDynamicSharedMemory { get; }

    public override string ToString() => $"{Kernel}({string.Join(", ", Parameters)})";

    [GeneratedRegex(@"\bKERNEL\s+void\s+([A-Za-z_][A-Za-z0-9_]*)\s*\(((?:[^()]|\([^()]*\))*)\)", RegexOptions.Singleline)]
    private static partial Regex KernelDeclaration();

    [GeneratedRegex(@"//[^\n]*|/\*.*?\*/", RegexOptions.Singleline)]
    private static partial Regex Comment();

    [GeneratedRegex(@"DYNAMIC_SHARED_PARAM\s*\([^)]*\)")]
    private static partial Regex DynamicSharedParameter();

    [GeneratedRegex(@"^#line[^\n]*$", RegexOptions.Multiline)]
    private static partial Regex LineDirective();

    /// <summary>
    /// Every <c>KERNEL</c> declared in <paramref name="sourceText"/>, by name. A parameter whose type
    /// cannot be sized is an error naming the file, kernel and parameter: kernels take only pointers to
    /// global memory and the scalar types listed in <see cref="ScalarSize"/>.
    /// </summary>
    public static IReadOnlyDictionary<string, KernelSignature> Parse(string sourceName, string sourceText)
    {
        string text = LineDirective().Replace(Comment().Replace(sourceText, " "), " ");
        var result = new Dictionary<string, KernelSignature>(StringComparer.Ordinal);
        foreach (Match declaration in KernelDeclaration().Matches(text))
        {
            string name = declaration.Groups[1].Value;
            string list = declaration.Groups[2].Value;
            bool dynamicShared = DynamicSharedParameter().IsMatch(list);
            list = DynamicSharedParameter().Replace(list, " ");
            var parameters = new List<KernelParameter>();
            foreach (string raw in list.Split(','))
            {
                string parameter = string.Join(' ', raw.Split((char[])[' ', '\t', '\r', '\n'], StringSplitOptions.RemoveEmptyEntries));
                if (parameter.Length == 0 || parameter == "void") continue;
                parameters.Add(ParseParameter(sourceName, name, parameter));
            }
            result[name] = new KernelSignature(name, parameters, dynamicShared);
        }
        return result;
    }

    private static KernelParameter ParseParameter(string sourceName, string kernel, string declaration)
    {
        // "const GLOBAL float* __restrict__ in" -> name "in", type "const GLOBAL float*"
        string spaced = declaration.Replace("*", " * ");
        string[] tokens = spaced.Split(' ', StringSplitOptions.RemoveEmptyEntries);
        if (tokens.Length < 2)
            throw new AlexNetException($"{sourceName}: cannot read parameter '{declaration}' of kernel {kernel}: give it a type and a name");
        string name = tokens[^1];
        string[] typeTokens = tokens[..^1].Where(t => t is not ("__restrict__" or "const" or "volatile")).ToArray();
        string type = string.Join(' ', tokens[..^1].Where(t => t != "__restrict__")).Replace(" *", "*");
        if (typeTokens.Contains("*"))
        {
            if (!typeTokens.Contains("GLOBAL"))
                throw new AlexNetException($"{sourceName}: parameter '{declaration}' of kernel {kernel} is a pointer without GLOBAL; OpenCL needs the address space on every kernel pointer");
            return new KernelParameter(name, type, KernelParameterKind.GlobalPointer, 8);
        }
        string scalar = string.Join(' ', typeTokens);
        int size = ScalarSize(scalar)
            ?? throw new AlexNetException($"{sourceName}: parameter '{declaration}' of kernel {kernel} has type '{scalar}', which the host cannot size; use int, uint, float, ulong/unsigned long long or a GLOBAL pointer");
        return new KernelParameter(name, type, KernelParameterKind.Scalar, size);
    }

    /// <summary>The byte size of the scalar parameter types kernels may take, identical on both compilers.</summary>
    public static int? ScalarSize(string type) => type switch
    {
        "int" or "uint" or "unsigned" or "unsigned int" or "float" => 4,
        "ulong" or "long long" or "unsigned long long" or "double" => 8,
        "char" or "uchar" or "unsigned char" => 1,
        "short" or "ushort" or "unsigned short" => 2,
        _ => null,
    };
}
