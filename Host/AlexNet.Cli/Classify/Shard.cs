using System.Globalization;
using AlexNet.Cuda;

namespace AlexNet.Cli.Classify;

/// <summary>
/// One of <see cref="Count"/> parts of a run (<c>--shard I/N</c>): the <see cref="Index"/>-th contiguous slice
/// of the input list. Slices are contiguous and in order, so the shards' outputs concatenated in index order
/// are exactly one unsharded run's output (docs/scaling.md).
/// </summary>
internal readonly record struct Shard(int Index, int Count)
{
    /// <summary>The whole input as one shard.</summary>
    public static Shard All => new(0, 1);

    /// <summary>Reads <c>I/N</c> with 0 ≤ I &lt; N; anything else is a one-line error that says what is wrong.</summary>
    public static Shard Parse(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        string prefix = $"--shard {text}";
        int slash = text.IndexOf('/');
        if (slash < 0 || text.IndexOf('/', slash + 1) >= 0)
            throw new AlexNetException($"{prefix}: give INDEX/COUNT, e.g. 0/4 for the first of four shards");
        int index = Number(text[..slash], "index", prefix);
        int count = Number(text[(slash + 1)..], "count", prefix);
        if (count < 1)
            throw new AlexNetException($"{prefix}: the count must be at least 1");
        if (index >= count)
            throw new AlexNetException($"{prefix}: the index must be below the count (0..{count - 1})");
        return new Shard(index, count);
    }

    private static int Number(string part, string what, string prefix)
    {
        // Digits only (no sign, spaces or separators): the text usually comes from a job template, where anything
        // else is a templating mistake worth reporting rather than guessing at.
        if (part.Length == 0 || !part.All(char.IsAsciiDigit))
            throw new AlexNetException($"{prefix}: the {what} '{part}' is not a whole number; give INDEX/COUNT, e.g. 0/4");
        if (!int.TryParse(part, NumberStyles.None, CultureInfo.InvariantCulture, out int value))
            throw new AlexNetException($"{prefix}: the {what} {part} is too large");
        return value;
    }

    /// <summary>Where this shard's slice of <paramref name="total"/> items starts, and how many it holds.</summary>
    public (int Start, int Length) Range(int total)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(total);
        if (Count < 1 || Index < 0 || Index >= Count)
            throw new InvalidOperationException($"shard {Index}/{Count} is not a valid shard");
        // The first (total mod Count) shards take one item more than the rest.
        int size = total / Count;
        int extra = total % Count;
        int start = Index * size + Math.Min(Index, extra);
        return (start, size + (Index < extra ? 1 : 0));
    }

    /// <summary>This shard's contiguous slice of <paramref name="items"/>; empty when there are more shards than items.</summary>
    public IReadOnlyList<T> Slice<T>(IReadOnlyList<T> items)
    {
        ArgumentNullException.ThrowIfNull(items);
        (int start, int length) = Range(items.Count);
        var slice = new T[length];
        for (int i = 0; i < length; i++) slice[i] = items[start + i];
        return slice;
    }

    public override string ToString() => $"{Index}/{Count}";
}
