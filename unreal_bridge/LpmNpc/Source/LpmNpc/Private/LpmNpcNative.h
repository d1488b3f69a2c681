// FLpmNpcNative: the plain native owner of one bridge_core client and session (lpm_bridge.h).
// It holds no engine objects, so it can be opened and closed on worker threads; the component
// keeps it in a thread-safe shared pointer and the microphone's capture thread a weak one.
#pragma once

#include "CoreMinimal.h"
#include "lpm_bridge.h"

struct FLpmNpcOpenParams
{
	FString Address;
	FString Token;
	uint32 TimeoutMs = 10000;
	/** TLS (lpm_connect_options): on when bTls or any TLS file is set. The files are read in Open
	 *  through the engine's file system (pak files included) and passed as PEM text. */
	bool bTls = false;
	FString TlsCaFile;
	FString TlsCertFile;
	FString TlsKeyFile;
	FString TlsServerName;
	FString Character;
	FString Prompt;
	uint64 Seed = 0;
	uint32 Size = 0;
	int32 Delivery = LPM_DELIVERY_AUTO;
	int32 IdlePolicy = LPM_IDLE_DEFAULT;
};

class FLpmNpcNative
{
public:
	~FLpmNpcNative();

	/** Connects and opens the session (blocking: call it off the game thread). */
	bool Open(const FLpmNpcOpenParams& Params, FString& OutError);

	/** CloseSession and release everything (blocking; also done by the destructor). */
	void Close();

	/** Valid between a successful Open and Close. The bridge's session functions are thread-safe. */
	lpm_session* Session() const { return SessionHandle; }
	const lpm_session_info& Info() const { return SessionInfo; }

	/** "<call>: <LPM_ERR_...>: <lpm_last_error()>" for a failed call on this thread. */
	static FString Describe(int32 Status, const TCHAR* Call);

private:
	lpm_client* Client = nullptr;
	lpm_session* SessionHandle = nullptr;
	lpm_session_info SessionInfo = {};
	FCriticalSection CloseLock;
};
