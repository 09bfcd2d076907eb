using AlexNet.Cuda.Devices;

namespace AlexNet.Cuda.Network;

/// <summary>
/// Device time per operation of a forward pass: timing events created once, recorded between the
/// operations of <see cref="AlexNetModel.Run(int, ForwardProfile)"/> (im2col, GEMM, bias+ReLU, LRN, …), read
/// back as milliseconds per named step after the pass. Events between launches cost a little device time
/// themselves, so a benchmark times whole passes without a profile and uses one only for the breakdown.
/// </summary>
public sealed class ForwardProfile : IDisposable
{
    private readonly ComputeDevice _device;
    private readonly DeviceEvent[] _events;
    private readonly string[] _names;
    private int _count;

    internal ForwardProfile(ComputeDevice device, int capacity)
    {
        _device = device;
        _events = new DeviceEvent[capacity + 1];
        _names = new string[capacity + 1];
        try
        {
            for (int i = 0; i < _events.Length; i++) _events[i] = device.CreateEvent(timing: true);
        }
        catch
        {
            Dispose();
            throw;
        }
    }

    /// <summary>Starts a pass: the first event marks its beginning.</summary>
    internal void Begin(ComputeStream stream)
    {
        _count = 0;
        stream.Record(_events[0]);
    }

    /// <summary>Marks the end of the operation <paramref name="name"/> (a string constant: no allocation).</summary>
    internal void Mark(ComputeStream stream, string name)
    {
        if (_count + 1 >= _events.Length) return; // more steps than planned: the rest fold into the last
        _count++;
        _names[_count] = name;
        stream.Record(_events[_count]);
    }

    /// <summary>The steps of the last pass in order, with the device milliseconds of each; a step that ran
    /// several times (im2col and GEMM per workspace chunk) is summed under its name. Waits for the pass.</summary>
    public IReadOnlyList<(string Name, double Milliseconds)> Read()
    {
        var steps = new List<(string Name, double Milliseconds)>();
        for (int i = 1; i <= _count; i++)
        {
            double ms = _device.ElapsedMilliseconds(_events[i - 1], _events[i]);
            int at = steps.FindIndex(s => s.Name == _names[i]);
            if (at >= 0) steps[at] = (_names[i], steps[at].Milliseconds + ms);
            else steps.Add((_names[i], ms));
        }
        return steps;
    }

    public void Dispose()
    {
        foreach (DeviceEvent? e in _events) e?.Dispose();
    }
}
