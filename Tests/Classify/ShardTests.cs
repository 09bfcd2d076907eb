using AlexNet.Cli.Classify;

namespace AlexNet.Cuda.Tests.Classify;

/// <summary><c>--shard I/N</c>: parsing, and slices that put every item in exactly one shard, in order.</summary>
public class ShardTests
{
    public static TheoryData<int, int> Pairs()
    {
        var data = new TheoryData<int, int>();
        foreach (int count in new[] { 0, 1, 2, 3, 7, 10, 64, 97, 1000, 1001 })
            foreach (int shards in new[] { 1, 2, 3, 4, 7, 8, 16, 100, 1000, 1001, 2048 })
                data.Add(count, shards);
        return data;
    }

    [Theory]
    [MemberData(nameof(Pairs))]
    public void ShardsInIndexOrderGiveEveryItemOnceInOrder(int count, int shards)
    {
        string[] items = Enumerable.Range(0, count).Select(i => $"image-{i:D5}.jpg").ToArray();
        var joined = new List<string>();
        var sizes = new int[shards];
        for (int index = 0; index < shards; index++)
        {
            IReadOnlyList<string> slice = new Shard(index, shards).Slice(items);
            sizes[index] = slice.Count;
            joined.AddRange(slice);
        }

        Assert.Equal(items, joined);
        // Balanced, the larger slices first: with the concatenation above this fixes every slice's bounds.
        Assert.True(sizes.Max() - sizes.Min() <= 1, $"sizes {string.Join(",", sizes)}");
        for (int i = 1; i < shards; i++) Assert.True(sizes[i] <= sizes[i - 1], $"shard {i} is larger than shard {i - 1}");
    }

    [Fact]
    public void TheExtraItemsGoToTheFirstShards()
    {
        int[] items = Enumerable.Range(0, 10).ToArray();
        Assert.Equal([0, 1, 2], new Shard(0, 4).Slice(items));
        Assert.Equal([3, 4, 5], new Shard(1, 4).Slice(items));
        Assert.Equal([6, 7], new Shard(2, 4).Slice(items));
        Assert.Equal([8, 9], new Shard(3, 4).Slice(items));
        Assert.Equal([4], new Shard(4, 10).Slice(items));
        Assert.Equal([9], new Shard(9, 12).Slice(items));
        Assert.Empty(new Shard(10, 12).Slice(items));
        Assert.Equal(items, Shard.All.Slice(items));
    }

    [Fact]
    public void RangesOfTheLargestListDoNotOverflow()
    {
        const int total = int.MaxValue;
        foreach (int shards in new[] { 1, 2, 3, 7, 1000, int.MaxValue })
        {
            long next = 0;
            foreach (int index in new[] { 0, 1, shards / 2, shards - 2, shards - 1 }.Where(i => i >= 0 && i < shards).Distinct().Order())
            {
                (int start, int length) = new Shard(index, shards).Range(total);
                long expectedStart = (long)index * (total / shards) + Math.Min(index, total % shards);
                Assert.Equal(expectedStart, start);
                Assert.True(start >= next && length >= 0 && (long)start + length <= total);
                next = (long)start + length;
            }
            Assert.Equal(total, next);
        }
    }

    [Theory]
    [InlineData("0/1", 0, 1)]
    [InlineData("0/4", 0, 4)]
    [InlineData("3/4", 3, 4)]
    [InlineData("09/10", 9, 10)]
    [InlineData("2147483646/2147483647", 2147483646, 2147483647)]
    public void ParseReadsIndexAndCount(string text, int index, int count)
    {
        Shard shard = Shard.Parse(text);
        Assert.Equal(new Shard(index, count), shard);
        Assert.Equal($"{index}/{count}", shard.ToString());
    }

    [Theory]
    [InlineData("3/3", "--shard 3/3: the index must be below the count (0..2)")]
    [InlineData("5/3", "--shard 5/3: the index must be below the count (0..2)")]
    [InlineData("1/1", "--shard 1/1: the index must be below the count (0..0)")]
    [InlineData("0/0", "--shard 0/0: the count must be at least 1")]
    [InlineData("", "--shard : give INDEX/COUNT, e.g. 0/4 for the first of four shards")]
    [InlineData("3", "--shard 3: give INDEX/COUNT, e.g. 0/4 for the first of four shards")]
    [InlineData("1/2/3", "--shard 1/2/3: give INDEX/COUNT, e.g. 0/4 for the first of four shards")]
    [InlineData("1:4", "--shard 1:4: give INDEX/COUNT, e.g. 0/4 for the first of four shards")]
    [InlineData("/4", "--shard /4: the index '' is not a whole number; give INDEX/COUNT, e.g. 0/4")]
    [InlineData("1/", "--shard 1/: the count '' is not a whole number; give INDEX/COUNT, e.g. 0/4")]
    [InlineData("-1/4", "--shard -1/4: the index '-1' is not a whole number; give INDEX/COUNT, e.g. 0/4")]
    [InlineData("+1/4", "--shard +1/4: the index '+1' is not a whole number; give INDEX/COUNT, e.g. 0/4")]
    [InlineData("1/-4", "--shard 1/-4: the count '-4' is not a whole number; give INDEX/COUNT, e.g. 0/4")]
    [InlineData(" 1/4", "--shard  1/4: the index ' 1' is not a whole number; give INDEX/COUNT, e.g. 0/4")]
    [InlineData("1/4 ", "--shard 1/4 : the count '4 ' is not a whole number; give INDEX/COUNT, e.g. 0/4")]
    [InlineData("1.0/4", "--shard 1.0/4: the index '1.0' is not a whole number; give INDEX/COUNT, e.g. 0/4")]
    [InlineData("a/4", "--shard a/4: the index 'a' is not a whole number; give INDEX/COUNT, e.g. 0/4")]
    [InlineData("1/${N}", "--shard 1/${N}: the count '${N}' is not a whole number; give INDEX/COUNT, e.g. 0/4")]
    [InlineData("$(JOB_COMPLETION_INDEX)/4", "--shard $(JOB_COMPLETION_INDEX)/4: the index '$(JOB_COMPLETION_INDEX)' is not a whole number; give INDEX/COUNT, e.g. 0/4")]
    [InlineData("١/٤", "--shard ١/٤: the index '١' is not a whole number; give INDEX/COUNT, e.g. 0/4")]
    [InlineData("0/99999999999", "--shard 0/99999999999: the count 99999999999 is too large")]
    [InlineData("2147483648/2147483649", "--shard 2147483648/2147483649: the index 2147483648 is too large")]
    public void ParseRefusesAnythingElseWithOneLine(string text, string message)
    {
        var e = Assert.ThrowsAny<AlexNetException>(() => Shard.Parse(text));
        Assert.Equal(message, e.Message);
    }

    [Fact]
    public void AShardThatParseWouldRefuseCannotSlice()
    {
        Assert.Throws<InvalidOperationException>(() => default(Shard).Slice(new[] { 1 }));
        Assert.Throws<InvalidOperationException>(() => new Shard(3, 3).Slice(new[] { 1 }));
        Assert.Throws<InvalidOperationException>(() => new Shard(-1, 3).Slice(new[] { 1 }));
    }
}
