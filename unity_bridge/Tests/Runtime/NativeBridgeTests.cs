// Needs the native library (Assets/Plugins/x86_64): the twins in NativeBridge.cs match it, and a
// daemon that is not there is reported as Unavailable with its address.
using NUnit.Framework;

namespace LpmNpc.Tests
{
    [Category("Native")]
    public class NativeBridgeTests
    {
        [Test]
        public void UnreachableDaemonIsUnavailable()
        {
            var e = Assert.Throws<LpmNpcException>(() => LpmNpcClient.Connect("127.0.0.1:1", null, 300));
            Assert.AreEqual(LpmStatus.Unavailable, e.Status);
            StringAssert.Contains("127.0.0.1:1", e.Message);
        }

        [Test]
        public void EmptyAddressIsInvalid()
        {
            var e = Assert.Throws<LpmNpcException>(() => LpmNpcClient.Connect("", null, 300));
            Assert.AreEqual(LpmStatus.InvalidArgument, e.Status);
        }
    }
}
