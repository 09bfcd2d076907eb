namespace AlexNet.Cuda.Network;

/// <summary>The top classes of a row of probabilities (or logits).</summary>
public static class ClassRanking
{
    /// <summary>
    /// Indices of the <paramref name="k"/> largest values, largest first; equal values keep the lower index
    /// first. One pass with an insertion into a k-long list: no sort of the whole row, no allocation but the result.
    /// </summary>
    public static int[] Top(ReadOnlySpan<float> values, int k)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(k);
        k = Math.Min(k, values.Length);
        var best = new int[k];
        int filled = 0;
        for (int i = 0; i < values.Length; i++)
        {
            int at = filled;
            while (at > 0 && values[best[at - 1]] < values[i]) at--;
            if (at >= k) continue;
            if (filled < k) filled++;
            Array.Copy(best, at, best, at + 1, filled - at - 1);
            best[at] = i;
        }
        return best;
    }
}
