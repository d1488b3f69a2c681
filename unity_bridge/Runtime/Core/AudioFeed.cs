// Audio into the daemon's format (16 kHz mono float) and onto its clock in real-time-sized
// pieces. Engine-agnostic: the Unity component feeds it AudioClip and Microphone data.
using System;
using System.Collections.Generic;

namespace LpmNpc
{
    /// <summary>
    /// Streaming conversion of interleaved audio at any rate to 16 kHz mono: channels are averaged,
    /// then linear interpolation between input samples. The fractional read position carries over
    /// between calls, so a stream converted piece by piece equals the whole converted at once.
    /// </summary>
    public sealed class StreamingResampler
    {
        public const int OutputRate = 16000;
        readonly int channels;
        readonly double step;  // input samples per output sample
        double position;       // next output's position, in input samples from the start of `previous`
        float previous;        // the last mono input sample of the previous call
        bool started;

        public StreamingResampler(int inputRate, int channels)
        {
            if (inputRate < 8000 || inputRate > 384000)
                throw new ArgumentOutOfRangeException("inputRate", inputRate, "inputRate must be in [8000, 384000] Hz");
            if (channels < 1 || channels > 16)
                throw new ArgumentOutOfRangeException("channels", channels, "channels must be in [1, 16]");
            this.channels = channels;
            step = (double)inputRate / OutputRate;
        }

        /// <summary>Converts `frames` interleaved frames of `input` from `offset` (in samples) and
        /// appends the 16 kHz mono samples to `output`.</summary>
        public void Process(float[] input, int offset, int frames, List<float> output)
        {
            if (input == null) throw new ArgumentNullException("input");
            if (offset < 0 || frames < 0 || offset + frames * channels > input.Length)
                throw new ArgumentOutOfRangeException("frames", "offset + frames * channels exceeds the input");
            if (frames == 0) return;
            // mono(i) for i in [-1, frames): -1 is the previous call's last sample.
            if (!started)
            {
                previous = Mono(input, offset, 0);
                position = 1.0;  // the first output is the first input sample (index 0 of mono)
                started = true;
            }
            while (position <= frames)
            {
                int i = (int)Math.Floor(position);
                double t = position - i;
                float a = i == 0 ? previous : Mono(input, offset, i - 1);
                float b = i >= frames ? a : Mono(input, offset, i);
                output.Add((float)(a + (b - a) * t));
                position += step;
            }
            previous = Mono(input, offset, frames - 1);
            position -= frames;
        }

        float Mono(float[] input, int offset, int frame)
        {
            int at = offset + frame * channels;
            float sum = 0;
            for (int c = 0; c < channels; c++) sum += input[at + c];
            return sum / channels;
        }
    }

    /// <summary>
    /// Plays 16 kHz samples into a session's track at real time, in pieces of about 100 ms, as a
    /// TTS player or a microphone would deliver them: call Feed with the current time (seconds on
    /// any monotonic clock) from the engine's update. Ends the segment when the line is done.
    /// </summary>
    public sealed class RealtimeFeeder
    {
        public const int PieceSamples = 1600;
        readonly LpmTrack track;
        float[] samples = new float[0];
        int sent;
        long totalSent;
        double startSeconds = -1;
        bool endSegment;

        public RealtimeFeeder(LpmTrack track) { this.track = track; }

        public bool Active { get { return sent < samples.Length || endSegment; } }
        /// <summary>Samples pushed over the feeder's life (all lines).</summary>
        public long SamplesSent { get { return totalSent; } }

        /// <summary>Starts a line: `samples16k` at 16 kHz mono, from `nowSeconds` on.</summary>
        public void Start(float[] samples16k, double nowSeconds)
        {
            if (samples16k == null) throw new ArgumentNullException("samples16k");
            samples = samples16k;
            sent = 0;
            startSeconds = nowSeconds;
            endSegment = true;
        }

        /// <summary>Drops what is not sent yet, without a segment end (after an Interrupt).</summary>
        public void Stop()
        {
            samples = new float[0];
            sent = 0;
            endSegment = false;
        }

        /// <summary>Pushes every piece due by `nowSeconds`; returns the samples pushed.</summary>
        public int Feed(LpmNpcSession session, double nowSeconds)
        {
            if (!Active || startSeconds < 0) return 0;
            long due = (long)((nowSeconds - startSeconds) * StreamingResampler.OutputRate) + PieceSamples;
            int pushed = 0;
            while (sent < samples.Length && sent < due)
            {
                int n = Math.Min(PieceSamples, samples.Length - sent);
                session.PushAudio(track, samples, sent, n);
                sent += n;
                totalSent += n;
                pushed += n;
            }
            if (sent >= samples.Length && endSegment)
            {
                session.EndSegment(track);
                endSegment = false;
            }
            return pushed;
        }
    }

    /// <summary>
    /// Where new samples are in a looping capture buffer (a microphone clip): given the writer's
    /// position each update, returns the ranges written since the last call, across the wrap.
    /// </summary>
    public sealed class LoopingBufferCursor
    {
        readonly int length;
        int read;

        public LoopingBufferCursor(int lengthSamples, int startPosition)
        {
            if (lengthSamples <= 0) throw new ArgumentOutOfRangeException("lengthSamples", lengthSamples, "must be > 0");
            length = lengthSamples;
            read = startPosition % lengthSamples;
        }

        /// <summary>The new ranges (start, count): one, or two when the writer wrapped.</summary>
        public int Advance(int writePosition, out int firstStart, out int firstCount, out int secondCount)
        {
            writePosition %= length;
            firstStart = read;
            if (writePosition >= read)
            {
                firstCount = writePosition - read;
                secondCount = 0;
            }
            else
            {
                firstCount = length - read;
                secondCount = writePosition;
            }
            read = writePosition;
            return firstCount + secondCount;
        }
    }
}
