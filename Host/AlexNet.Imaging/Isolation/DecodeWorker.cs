using System.Buffers.Binary;
using System.Runtime.InteropServices;
using System.Text;
using AlexNet.Cuda.Interop;

namespace AlexNet.Imaging.Isolation;

/// <summary>
/// The worker side of <see cref="IsolatedImageDecoder"/>: a process that decodes the files its parent names,
/// one at a time, and sends back the pixels or the problem. Whatever a crafted file does to the decoder here
/// (an access violation, an endless loop, gigabytes of allocation) ends or stalls only this process; the
/// parent's watchdog stops it and the file gets an error record.
/// </summary>
public static class DecodeWorker
{
    /// <summary>Above this, the memory of a decode is handed back to the system before the next one.</summary>
    private const long LargeDecodeBytes = 32L << 20;

    /// <summary>
    /// Serves decode requests from <paramref name="input"/> until it ends (the parent closed it or ended),
    /// answering on <paramref name="output"/>. Returns the exit status: 0, or 1 when the parent is gone.
    /// </summary>
    public static int Serve(Stream input, Stream output, IImageDecoder decoder)
    {
        ArgumentNullException.ThrowIfNull(input);
        ArgumentNullException.ThrowIfNull(output);
        ArgumentNullException.ThrowIfNull(decoder);
        // Ctrl+C reaches the whole process group; the parent decides when to stop and closes the pipe.
        using var interrupt = PosixSignalRegistration.Create(PosixSignal.SIGINT, context => context.Cancel = true);
        StartParentWatch();

        var requests = new FrameStream(input);
        var replies = new FrameStream(new BufferedStream(output, 1 << 16));
        var memory = new ParentMemory(requests, replies);
        replies.Write(FrameType.Hello, decoder.Name);
        var header = new byte[8];
        while (requests.ReadHeader() is (FrameType type, long length))
        {
            if (type != FrameType.Decode) throw new InvalidDataException($"expected a decode request, not {type}");
            byte[]? payload = requests.ReadSmallPayload(length);
            if (payload is null) break;
            var options = new ImageDecodeOptions
            {
                MaxPixels = BinaryPrimitives.ReadInt64LittleEndian(payload),
                TargetShortSide = BinaryPrimitives.ReadInt32LittleEndian(payload.AsSpan(8)),
                FastDecode = payload[12] != 0,
                Memory = memory,
            };
            string path = Encoding.UTF8.GetString(payload.AsSpan(13));
            memory.Requested = 0;
            try
            {
                using DecodedImage image = decoder.Decode(path, options);
                replies.WriteHeader(FrameType.Image, 8 + (long)image.Pixels.Length);
                Span<byte> size = header;
                BinaryPrimitives.WriteInt32LittleEndian(size, image.Width);
                BinaryPrimitives.WriteInt32LittleEndian(size[4..], image.Height);
                replies.WritePayload(size);
                replies.WritePayload(image.Pixels);
                replies.Flush();
            }
            catch (ImageDecodeException e)
            {
                replies.Write(FrameType.Error, e.Problem);
            }
            catch (OutOfMemoryException)
            {
                replies.Write(FrameType.Error, "needs more memory to decode than this machine could give");
            }
            if (memory.Requested > LargeDecodeBytes)
            {
                ImageSharpDecoder.ReleaseRetainedMemory();
                GC.Collect(GC.MaxGeneration, GCCollectionMode.Aggressive, blocking: true, compacting: true);
            }
        }
        return 0;
    }

    /// <summary>
    /// Ends this process when its parent has ended, even in the middle of a decode that never returns (the
    /// pipe's end is only seen between requests).
    /// </summary>
    private static void StartParentWatch()
    {
        int? parent = NativeProcess.ParentId();
        if (parent is null) return;
        var watch = new Thread(() =>
        {
            while (NativeProcess.ParentId() == parent) Thread.Sleep(500);
            Environment.Exit(1);
        })
        {
            IsBackground = true,
            Name = "parent watch",
        };
        watch.Start();
    }

    /// <summary>The memory a decode asks for, asked of the parent's budget.</summary>
    private sealed class ParentMemory(FrameStream requests, FrameStream replies) : DecodeMemory
    {
        public long Requested { get; set; }

        public override IDisposable Reserve(string path, long bytes) => Reserve(path, bytes, bytes);

        public override IDisposable Reserve(string path, long bytes, long imageBytes)
        {
            Span<byte> payload = stackalloc byte[16];
            BinaryPrimitives.WriteInt64LittleEndian(payload, bytes);
            BinaryPrimitives.WriteInt64LittleEndian(payload[8..], imageBytes);
            replies.Write(FrameType.Reserve, payload);
            Requested += bytes;
            if (requests.ReadHeader() is not (FrameType type, long length)) throw new EndOfStreamException("the parent closed the pipe");
            byte[] message = requests.ReadSmallPayload(length) ?? throw new EndOfStreamException("the parent closed the pipe");
            return type switch
            {
                FrameType.Granted => NoLease.Instance,
                FrameType.Refused => throw new ImageDecodeException(path, Encoding.UTF8.GetString(message)),
                _ => throw new InvalidDataException($"expected an answer to a memory request, not {type}"),
            };
        }
    }
}
