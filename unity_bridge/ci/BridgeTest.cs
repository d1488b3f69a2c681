// The engine-agnostic C# of com.lpmnpc.bridge against a live daemon, through the bridge_core
// shared library (P/Invoke), run by unity_bridge/ci/test.sh under mono:
//   mono BridgeTest.exe HOST:PORT REPO_ROOT [TLS_HOST:PORT PKI_DIR]
// Unit checks of the audio helpers; with a mutual-TLS daemon (TLS_HOST:PORT, certificates from
// bridge_core/tests/tls_fixture.py in PKI_DIR): LpmConnectSettings with files and with PEM text
// get in, no client certificate is Unavailable, a missing file and a certificate without its key
// fail with their field named. Then: register a sample character, open a session, stream a wav in
// real time (float32 pieces), read >= 48 frames (seq rises, pixels vary), interrupt
// (PlaybackFinished{interrupted}), close. Waits generously; never asserts timing.
using System;
using System.Collections.Generic;
using System.Diagnostics;
using System.IO;
using LpmNpc;

static class BridgeTest
{
    const int FramesWanted = 48;

    static void Check(bool condition, string what)
    {
        if (!condition) throw new Exception("CHECK failed: " + what);
    }

    static float[] ReadWav16kMono(string path)
    {
        byte[] b = File.ReadAllBytes(path);
        Check(b.Length > 44 && b[0] == 'R' && b[8] == 'W', path + " is RIFF/WAVE");
        int at = 12;
        bool formatOk = false;
        while (at + 8 <= b.Length)
        {
            string id = System.Text.Encoding.ASCII.GetString(b, at, 4);
            int size = BitConverter.ToInt32(b, at + 4);
            if (id == "fmt ")
                formatOk = BitConverter.ToInt16(b, at + 8) == 1 && BitConverter.ToInt16(b, at + 10) == 1 &&
                           BitConverter.ToInt32(b, at + 12) == 16000 && BitConverter.ToInt16(b, at + 22) == 16;
            if (id == "data")
            {
                Check(formatOk, path + " is PCM16 mono 16 kHz");
                int n = Math.Min(size, b.Length - at - 8) / 2;
                var samples = new float[n];
                for (int i = 0; i < n; i++) samples[i] = BitConverter.ToInt16(b, at + 8 + 2 * i) / 32768f;
                return samples;
            }
            at += 8 + size + (size & 1);
        }
        throw new Exception(path + ": no data chunk");
    }

    static void CheckAudioHelpers()
    {
        // 1 s of a 440 Hz stereo sine at 48 kHz -> 16 kHz mono, whole and in odd-sized pieces.
        const int rate = 48000;
        var stereo = new float[rate * 2];
        for (int i = 0; i < rate; i++)
        {
            float v = (float)Math.Sin(2 * Math.PI * 440 * i / rate);
            stereo[2 * i] = v;
            stereo[2 * i + 1] = v * 0.5f;
        }
        var whole = new List<float>();
        new StreamingResampler(rate, 2).Process(stereo, 0, rate, whole);
        var pieces = new List<float>();
        var resampler = new StreamingResampler(rate, 2);
        for (int at = 0; at < rate; at += 997)
            resampler.Process(stereo, at * 2, Math.Min(997, rate - at), pieces);
        Check(Math.Abs(whole.Count - 16000) <= 1, "1 s at 48 kHz gives 16000 samples, got " + whole.Count);
        Check(pieces.Count == whole.Count, "piecewise conversion gives " + pieces.Count + " samples, whole " + whole.Count);
        double maxDiff = 0;
        for (int i = 0; i < whole.Count; i++) maxDiff = Math.Max(maxDiff, Math.Abs(whole[i] - pieces[i]));
        Check(maxDiff < 1e-5, "piecewise equals whole (max diff " + maxDiff + ")");
        int crossings = 0;
        for (int i = 1; i < whole.Count; i++) if ((whole[i - 1] < 0) != (whole[i] < 0)) crossings++;
        Check(Math.Abs(crossings / 2.0 - 440) < 5, "the sine keeps 440 Hz (" + crossings / 2.0 + ")");
        float peak = 0;
        foreach (float v in whole) peak = Math.Max(peak, Math.Abs(v));
        Check(Math.Abs(peak - 0.75f) < 0.01f, "channels are averaged (peak " + peak + ")");
        bool refused = false;
        try { new StreamingResampler(100, 1); } catch (ArgumentOutOfRangeException) { refused = true; }
        Check(refused, "a 100 Hz input rate is refused");

        var cursor = new LoopingBufferCursor(1000, 900);
        int s, n1, n2;
        Check(cursor.Advance(950, out s, out n1, out n2) == 50 && s == 900 && n1 == 50 && n2 == 0, "cursor forward");
        Check(cursor.Advance(30, out s, out n1, out n2) == 80 && s == 950 && n1 == 50 && n2 == 30, "cursor wraps");
        Console.WriteLine("PASS audio helpers (resampler: " + whole.Count + " samples, " + crossings / 2.0 + " Hz)");
    }

    static void CheckErrors(string repo)
    {
        try
        {
            LpmNpcClient.Connect("127.0.0.1:1", null, 500).Dispose();
            Check(false, "connecting to port 1 fails");
        }
        catch (LpmNpcException e)
        {
            Check(e.Status == LpmStatus.Unavailable, "port 1 is Unavailable, got " + e.Status);
            Check(e.Message.Contains("127.0.0.1:1"), "the message names the address: " + e.Message);
            Console.WriteLine("PASS unreachable daemon: " + e.Message);
        }
    }

    // Connect must throw `expected` with a message containing `needle`.
    static void CheckRefused(string address, LpmConnectSettings settings, LpmStatus expected, string needle, string what)
    {
        try
        {
            LpmNpcClient.Connect(address, settings).Dispose();
            Check(false, what + " is refused");
        }
        catch (LpmNpcException e)
        {
            Check(e.Status == expected, what + ": " + expected + ", got " + e.Status + ": " + e.Message);
            Check(e.Message.Contains(needle), what + ": the message names " + needle + ": " + e.Message);
            Console.WriteLine("PASS " + what + ": " + e.Message);
        }
    }

    static void CheckTls(string address, string pki)
    {
        string ca = Path.Combine(pki, "ca.pem"), cert = Path.Combine(pki, "client.pem"), key = Path.Combine(pki, "client.key");
        var files = new LpmConnectSettings { TimeoutMs = 60000, TlsCaFile = ca, TlsCertFile = cert, TlsKeyFile = key };
        using (var client = LpmNpcClient.Connect(address, files)) client.Ping();
        Console.WriteLine("PASS mutual TLS with PEM files");
        var texts = new LpmConnectSettings
        {
            TimeoutMs = 60000,
            TlsCaPem = File.ReadAllText(ca),
            TlsCertPem = File.ReadAllText(cert),
            TlsKeyPem = File.ReadAllText(key),
            TlsServerName = "localhost",
        };
        using (var client = LpmNpcClient.Connect(address, texts)) client.Ping();
        Console.WriteLine("PASS mutual TLS with PEM text");
        CheckRefused(address, new LpmConnectSettings { TimeoutMs = 3000, TlsCaFile = ca }, LpmStatus.Unavailable,
            "without a client certificate", "TLS without the client certificate");
        string missing = Path.Combine(pki, "missing.pem");
        CheckRefused(address, new LpmConnectSettings { TlsCaFile = missing }, LpmStatus.Io,
            "options.tls_ca_file " + missing + ": no such file", "a missing CA file");
        CheckRefused(address, new LpmConnectSettings { TlsCaFile = ca, TlsCertFile = cert }, LpmStatus.InvalidArgument,
            "options.tls_cert_file " + cert + " is set without a key", "a certificate without its key");
    }

    static int Main(string[] args)
    {
        if (args.Length != 2 && args.Length != 4)
        {
            Console.Error.WriteLine("usage: mono BridgeTest.exe HOST:PORT REPO_ROOT [TLS_HOST:PORT PKI_DIR]");
            return 2;
        }
        string address = args[0], repo = args[1];
        try
        {
            CheckAudioHelpers();
            CheckErrors(repo);
            if (args.Length == 4) CheckTls(args[2], args[3]);
            Run(address, repo);
            Console.WriteLine("PASS mono bridge test");
            return 0;
        }
        catch (Exception e)
        {
            Console.WriteLine("FAIL " + e);
            return 1;
        }
    }

    static void Run(string address, string repo)
    {
        string token = Environment.GetEnvironmentVariable("LPM_NPC_TOKEN");
        using (var client = LpmNpcClient.Connect(address, token, 120000))
        {
            uint stored = client.Ping();
            LpmCharacter character = client.RegisterCharacterDirectory(Path.Combine(repo, "samples/characters/tobias"), "tobias");
            Check(character.CharacterId == "tobias" && character.Version.Length == 64, "registered tobias@" + character.Version);
            Check(character.ReferenceCount == 10, "10 references, got " + character.ReferenceCount);
            Console.WriteLine("registered tobias@" + character.Version.Substring(0, 12) + " (" + stored + " versions stored before)");
            try
            {
                client.OpenSession(new LpmSessionSettings { Character = "tobias", Size = 33 });
                Check(false, "an odd size is refused");
            }
            catch (LpmNpcException e)
            {
                Check(e.Status == LpmStatus.InvalidArgument, "odd size: InvalidArgument, got " + e.Status + ": " + e.Message);
                Console.WriteLine("PASS odd size refused: " + e.Message);
            }

            var session = client.OpenSession(new LpmSessionSettings { Character = "tobias", Prompt = "skeptical", Seed = 3 });
            LpmSessionInfo info = session.Info;
            Check(info.Delivery == (int)LpmDelivery.Shm, "AUTO on localhost maps the ring (delivery " + info.Delivery + ")");
            Check(info.SessionId.Length == 32 && info.ShmName == "lpmnpc-" + info.SessionId, "session id and ring name");
            Check(session.FrameBytes == info.Width * info.Height * 4 && info.Width == info.Height, "frame geometry");
            Console.WriteLine("session " + info.SessionId + ": " + info.Width + "x" + info.Height + ", ring " + info.ShmName);

            float[] speech = ReadWav16kMono(Path.Combine(repo, "samples/audio/tts_sentence.wav"));
            var feeder = new RealtimeFeeder(LpmTrack.Speak);
            var clock = Stopwatch.StartNew();
            feeder.Start(speech, clock.Elapsed.TotalSeconds);
            var reader = new LpmFrameReader(session);
            var presenter = new LpmFrameReader(session);
            byte[] first = null;
            double maxDiff = 0;
            var seqs = new List<ulong>();
            int speaking = 0, statuses = 0, started = 0, presented = 0;
            LpmEvent answer = default(LpmEvent);
            bool interrupted = false;
            var deadline = TimeSpan.FromSeconds(600);
            while (true)
            {
                Check(clock.Elapsed < deadline, "frames and the interrupt answer within 600 s (" + seqs.Count + " frames)");
                if (!interrupted) feeder.Feed(session, clock.Elapsed.TotalSeconds);
                while (reader.ReadNext())
                {
                    LpmFrameInfo f = reader.Current;
                    Check(seqs.Count == 0 || f.Seq > seqs[seqs.Count - 1], "seq rises (" + f.Seq + ")");
                    Check(f.Width == info.Width && f.Stride == info.Width * 4 && f.Format == 1, "frame format");
                    for (int i = 3; i < reader.Pixels.Length; i += 2048) Check(reader.Pixels[i] == 255, "alpha 255");
                    if (first == null) first = (byte[])reader.Pixels.Clone();
                    long total = 0;
                    for (int i = 0; i < first.Length; i++) total += Math.Abs(first[i] - reader.Pixels[i]);
                    maxDiff = Math.Max(maxDiff, (double)total / first.Length);
                    seqs.Add(f.Seq);
                }
                if (presenter.Present()) presented++;
                LpmEvent ev;
                while (session.TryPollEvent(out ev))
                {
                    if (ev.EventKind == LpmEventKind.Frame && ev.Speaking != 0 && !interrupted) speaking++;
                    if (ev.EventKind == LpmEventKind.Status) statuses++;
                    if (ev.EventKind == LpmEventKind.PlaybackStarted) started++;
                    if (ev.EventKind == LpmEventKind.PlaybackFinished && ev.Interrupted != 0 && interrupted) answer = ev;
                    Check(ev.EventKind != LpmEventKind.StreamEnded, "the stream stays open: " + ev.Text);
                }
                if (!interrupted && seqs.Count >= FramesWanted)
                {
                    feeder.Stop();
                    session.Interrupt();
                    interrupted = true;
                }
                if (interrupted && answer.Kind != 0) break;
                System.Threading.Thread.Sleep(5);
            }
            LpmCloseInfo closed = session.Close();
            session.Dispose();  // a second release is a no-op
            bool disposed = false;
            try { session.Interrupt(); } catch (ObjectDisposedException) { disposed = true; }
            Check(disposed, "a closed session refuses calls");

            Check(seqs.Count >= FramesWanted, seqs.Count + " frames read");
            Check(maxDiff > 0.05, "the pixels vary (max mean |diff| to the first frame " + maxDiff + ")");
            Check(speaking > 0, "frames showed the speech");
            Check(started >= 1 && answer.Segment >= 1, "the interrupt cut a started segment (" + answer.Segment + ")");
            Check(closed.Frames >= (ulong)seqs.Count, "the daemon counted the frames");
            Console.WriteLine("RESULT mono frames_read=" + seqs.Count + " seq " + seqs[0] + ".." + seqs[seqs.Count - 1] +
                              " speaking_frame_events=" + speaking + " status_events=" + statuses +
                              " presented=" + presented + " max_mean_abs_diff=" + maxDiff.ToString("F2") +
                              " interrupt_answer segment=" + answer.Segment + " pts_ms=" + answer.PtsMs +
                              " samples_sent=" + feeder.SamplesSent + " daemon_frames=" + closed.Frames);
        }
    }
}
