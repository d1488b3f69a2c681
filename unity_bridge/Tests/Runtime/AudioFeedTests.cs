// Unity Test Framework tests of the engine-agnostic audio helpers (no daemon, no native library).
using System;
using System.Collections.Generic;
using NUnit.Framework;

namespace LpmNpc.Tests
{
    public class AudioFeedTests
    {
        [Test]
        public void ResamplesStereo48kToMono16k()
        {
            const int rate = 48000;
            var stereo = new float[rate * 2];
            for (int i = 0; i < rate; i++)
            {
                float v = (float)Math.Sin(2 * Math.PI * 440 * i / rate);
                stereo[2 * i] = v;
                stereo[2 * i + 1] = v;
            }
            var output = new List<float>();
            new StreamingResampler(rate, 2).Process(stereo, 0, rate, output);
            Assert.That(Math.Abs(output.Count - 16000), Is.LessThanOrEqualTo(1));
            int crossings = 0;
            for (int i = 1; i < output.Count; i++) if ((output[i - 1] < 0) != (output[i] < 0)) crossings++;
            Assert.That(crossings / 2.0, Is.EqualTo(440).Within(5));
        }

        [Test]
        public void PiecewiseEqualsWhole()
        {
            var input = new float[44100];
            var random = new Random(1);
            for (int i = 0; i < input.Length; i++) input[i] = (float)(random.NextDouble() * 2 - 1);
            var whole = new List<float>();
            new StreamingResampler(44100, 1).Process(input, 0, input.Length, whole);
            var pieces = new List<float>();
            var resampler = new StreamingResampler(44100, 1);
            for (int at = 0; at < input.Length; at += 333)
                resampler.Process(input, at, Math.Min(333, input.Length - at), pieces);
            Assert.AreEqual(whole.Count, pieces.Count);
            for (int i = 0; i < whole.Count; i++) Assert.AreEqual(whole[i], pieces[i], 1e-5);
        }

        [Test]
        public void CursorWrapsAroundTheLoop()
        {
            var cursor = new LoopingBufferCursor(1000, 900);
            int start, first, second;
            Assert.AreEqual(150, cursor.Advance(50, out start, out first, out second));
            Assert.AreEqual(900, start);
            Assert.AreEqual(100, first);
            Assert.AreEqual(50, second);
        }

        [Test]
        public void RefusesBadRates()
        {
            Assert.Throws<ArgumentOutOfRangeException>(() => new StreamingResampler(100, 1));
            Assert.Throws<ArgumentOutOfRangeException>(() => new StreamingResampler(16000, 0));
        }
    }
}
