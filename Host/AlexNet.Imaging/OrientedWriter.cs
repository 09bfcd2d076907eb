namespace AlexNet.Imaging;

/// <summary>
/// Writes the rows of a stored image into a <see cref="DecodedImage"/> in display orientation, one source
/// row at a time, so a decoder that delivers rows never needs a second whole-image buffer. The orientation
/// is the EXIF one, 1–8 (anything else is treated as 1, as OpenCV and browsers do).
/// </summary>
/// <remarks>
/// Source pixel (sx, sy) of a W×H stored image goes to display pixel:
/// 1 (sx, sy); 2 mirrored (W−1−sx, sy); 3 rotated 180° (W−1−sx, H−1−sy); 4 flipped (sx, H−1−sy);
/// 5 transposed (sy, sx); 6 rotated 90° clockwise (H−1−sy, sx); 7 transversed (H−1−sy, W−1−sx);
/// 8 rotated 90° anticlockwise (sy, W−1−sx). Orientations 5–8 swap width and height.
/// </remarks>
internal sealed class OrientedWriter
{
    private readonly DecodedImage _image;
    private readonly int _storedWidth;
    private readonly int _storedHeight;
    private readonly int _orientation;
    private readonly byte[] _scratch;

    public OrientedWriter(int storedWidth, int storedHeight, int orientation)
    {
        _storedWidth = storedWidth;
        _storedHeight = storedHeight;
        _orientation = orientation is >= 1 and <= 8 ? orientation : 1;
        bool swaps = _orientation >= 5;
        _image = swaps ? new DecodedImage(storedHeight, storedWidth) : new DecodedImage(storedWidth, storedHeight);
        _scratch = _orientation is 1 or 4 ? [] : new byte[storedWidth * 3];
    }

    public DecodedImage Image => _image;

    /// <summary>Where the RGB bytes of stored row <paramref name="sy"/> are to be written; then call <see cref="Commit"/>.</summary>
    public Span<byte> Row(int sy)
    {
        int rowBytes = _storedWidth * 3;
        return _orientation switch
        {
            1 => _image.Writable.Slice(sy * rowBytes, rowBytes),
            4 => _image.Writable.Slice((_storedHeight - 1 - sy) * rowBytes, rowBytes),
            _ => _scratch,
        };
    }

    /// <summary>Places stored row <paramref name="sy"/>, written through <see cref="Row"/>, in the image.</summary>
    public void Commit(int sy)
    {
        if (_orientation is 1 or 4) return;
        Span<byte> pixels = _image.Writable;
        int w = _storedWidth, h = _storedHeight, outWidth = _image.Width;
        for (int sx = 0; sx < w; sx++)
        {
            (int dx, int dy) = _orientation switch
            {
                2 => (w - 1 - sx, sy),
                3 => (w - 1 - sx, h - 1 - sy),
                5 => (sy, sx),
                6 => (h - 1 - sy, sx),
                7 => (h - 1 - sy, w - 1 - sx),
                _ => (sy, w - 1 - sx),
            };
            int to = (dy * outWidth + dx) * 3;
            pixels[to] = _scratch[sx * 3];
            pixels[to + 1] = _scratch[sx * 3 + 1];
            pixels[to + 2] = _scratch[sx * 3 + 2];
        }
    }
}
