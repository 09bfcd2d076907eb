using System.Text;
using AlexNet.Cuda;
using Microsoft.Win32.SafeHandles;

namespace AlexNet.Cli;

/// <summary>
/// The program's stdout. Every write reaches the file descriptor at once (a line is out when it is written,
/// also into a pipe or a file), and when stdout is a pipe or socket whose reader has gone, a write throws
/// <see cref="OutputClosedException"/>, so that a command stops instead of working on for no one: .NET's own
/// console writer drops such writes without a word.
/// </summary>
internal static class StandardOutput
{
    /// <summary>
    /// A writer over fd 1 when it is a pipe, socket or terminal; <see cref="Console.Out"/> (which also writes
    /// each line at once) when it is a regular file, whose offset a stream of ours would track apart from other
    /// writers of the same open file (<c>2&gt;&amp;1</c>), or when fd 1 cannot be opened.
    /// </summary>
    public static TextWriter Open()
    {
        if (OperatingSystem.IsWindows()) return Console.Out;
        FileStream file;
        try
        {
            file = new FileStream(new SafeFileHandle(1, ownsHandle: false), FileAccess.Write, bufferSize: 0);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or ArgumentException)
        {
            return Console.Out;
        }
        if (file.CanSeek)
        {
            file.Dispose();
            return Console.Out;
        }
        return TextWriter.Synchronized(new StreamWriter(new Descriptor(file), new UTF8Encoding(encoderShouldEmitUTF8Identifier: false)) { AutoFlush = true });
    }

    /// <summary>Writes to fd 1 and says what went wrong in the program's terms.</summary>
    private sealed class Descriptor(FileStream file) : Stream
    {
        /// <summary>EPIPE on Linux: the HResult of the <see cref="IOException"/> for a write to a pipe no one reads.</summary>
        private const int BrokenPipe = 32;

        public override bool CanRead => false;
        public override bool CanSeek => false;
        public override bool CanWrite => true;
        public override long Length => throw new NotSupportedException();

        public override long Position
        {
            get => throw new NotSupportedException();
            set => throw new NotSupportedException();
        }

        public override void Write(byte[] buffer, int offset, int count) => Write(buffer.AsSpan(offset, count));

        public override void Write(ReadOnlySpan<byte> buffer)
        {
            try
            {
                file.Write(buffer);
            }
            catch (IOException e) when (e.HResult == BrokenPipe)
            {
                throw new OutputClosedException(e);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                // A closed fd 1 (`>&-`) is a descriptor the runtime reused for something not open for writing.
                throw new AlexNetException($"cannot write to stdout: {(e.InnerException ?? e).Message}", e);
            }
        }

        public override void Flush()
        {
        }

        public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException();
        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
        public override void SetLength(long value) => throw new NotSupportedException();
    }
}

/// <summary>stdout's reader has gone (<c>alexnet check | head -3</c>): <see cref="Program"/> ends quietly with
/// <see cref="Program.OutputClosed"/>; a command with work in flight may catch it to stop that first.</summary>
internal sealed class OutputClosedException(Exception inner) : IOException("stdout was closed by its reader", inner);
