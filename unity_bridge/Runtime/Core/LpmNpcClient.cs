// The connection to one daemon (lpm_client). Engine-agnostic.
using System;

namespace LpmNpc
{
    /// <summary>A registered character version (from lpm_character_info).</summary>
    public sealed class LpmCharacter
    {
        public string CharacterId;
        public string Version;
        public bool Created;
        public int ReferenceCount;
    }

    /// <summary>What to open (becomes lpm_session_options).</summary>
    public sealed class LpmSessionSettings
    {
        /// <summary>"ID" (newest version) or "ID@VERSION".</summary>
        public string Character;
        /// <summary>Style and emotion ("cheerful"); at most 512 characters; null = none.</summary>
        public string Prompt;
        public ulong Seed;
        /// <summary>Square frame side in px (even, 32..1024); 0 = the model's native size.</summary>
        public uint Size;
        public LpmDelivery Delivery = LpmDelivery.Auto;
        public LpmIdlePolicy IdlePolicy = LpmIdlePolicy.Default;
        /// <summary>SHM ring slots 2..64 (also the INLINE frames kept); 0 = 8.</summary>
        public uint ShmSlots;
    }

    /// <summary>
    /// One daemon connection. Thread-safe; Dispose when done (sessions opened from it keep working
    /// until they are disposed themselves).
    /// </summary>
    public sealed class LpmNpcClient : IDisposable
    {
        IntPtr handle;

        LpmNpcClient(IntPtr handle) { this.handle = handle; }

        /// <summary>Connects and waits until the channel is ready (LpmStatus.Unavailable otherwise).
        /// timeoutMs (0 = 30000) also bounds every later call of this client.</summary>
        public static LpmNpcClient Connect(string address, string token = null, uint timeoutMs = 0)
        {
            if (string.IsNullOrEmpty(address))
                throw new LpmNpcException(LpmStatus.InvalidArgument, "address is empty: give host:port");
            NativeBridge.CheckAbi();
            IntPtr client;
            NativeBridge.Check(NativeBridge.lpm_connect(NativeBridge.ToUtf8(address), NativeBridge.ToUtf8(token), timeoutMs, out client), "lpm_connect");
            return new LpmNpcClient(client);
        }

        internal IntPtr Handle
        {
            get
            {
                if (handle == IntPtr.Zero) throw new ObjectDisposedException("LpmNpcClient");
                return handle;
            }
        }

        /// <summary>A round trip that also checks the token; returns the stored character versions.</summary>
        public uint Ping()
        {
            uint count;
            NativeBridge.Check(NativeBridge.lpm_client_ping(Handle, out count), "lpm_client_ping");
            return count;
        }

        /// <summary>Registers a sheet directory (sheet.toml + images). Idempotent.</summary>
        public LpmCharacter RegisterCharacterDirectory(string sheetDirectory, string characterId = null)
        {
            LpmCharacterInfo info;
            NativeBridge.Check(NativeBridge.lpm_register_character_dir(Handle, NativeBridge.ToUtf8(sheetDirectory),
                NativeBridge.ToUtf8(characterId), out info), "lpm_register_character_dir");
            return new LpmCharacter
            {
                CharacterId = info.CharacterId,
                Version = info.Version,
                Created = info.Created != 0,
                ReferenceCount = (int)info.ReferenceCount,
            };
        }

        /// <summary>Opens a session and attaches its stream; its clock starts now.</summary>
        public LpmNpcSession OpenSession(LpmSessionSettings settings)
        {
            if (settings == null) throw new ArgumentNullException("settings");
            return LpmNpcSession.Open(this, settings);
        }

        public void Dispose()
        {
            if (handle != IntPtr.Zero)
            {
                NativeBridge.lpm_client_destroy(handle);
                handle = IntPtr.Zero;
            }
            GC.SuppressFinalize(this);
        }

        ~LpmNpcClient()
        {
            if (handle != IntPtr.Zero) NativeBridge.lpm_client_destroy(handle);
        }
    }
}
