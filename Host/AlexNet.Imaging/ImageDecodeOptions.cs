namespace AlexNet.Imaging;

/// <summary>Limits and shortcuts of one decode.</summary>
public sealed record ImageDecodeOptions
{
    /// <summary>
    /// Images whose header declares more pixels than this are refused before any pixel is decoded, so a
    /// small hostile file cannot make the decoder allocate gigabytes.
    /// </summary>
    public long MaxPixels { get; init; } = 100_000_000;

    /// <summary>
    /// Lets a JPEG be decoded at 1/2, 1/4 or 1/8 of its size (libjpeg's DCT scaling, far cheaper than a full
    /// decode) when the result's shorter side stays at least <see cref="TargetShortSide"/>. The pixels then
    /// differ from a full decode followed by the resize, so it is off by default. Only the skiasharp decoder
    /// can do it (ImageSharp 2.1 has no scaled decode) and only for JPEG.
    /// </summary>
    public bool FastDecode { get; init; }

    /// <summary>The shorter side <see cref="FastDecode"/> may scale down to, never below.</summary>
    public int TargetShortSide { get; init; } = 227;

    /// <summary>
    /// Where the decoder asks for the memory of one decode, from the header's size, before any pixel
    /// buffer is allocated: a shared <see cref="DecodeMemoryBudget"/> bounds all concurrent decodes together.
    /// </summary>
    public DecodeMemory Memory { get; init; } = DecodeMemory.Unlimited;
}
