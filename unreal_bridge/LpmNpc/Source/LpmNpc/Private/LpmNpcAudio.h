// Audio into the daemon's format: 16 kHz mono float (lpm_session_push_audio_f32).
#pragma once

#include "CoreMinimal.h"

class FLpmNpcNative;
class USoundWave;

/** Streaming linear resampler: interleaved audio at any rate -> 16 kHz mono (channels averaged).
 *  The fractional position carries over calls (the same algorithm as the Unity package's
 *  StreamingResampler). */
class FLpmNpcResampler
{
public:
	FLpmNpcResampler(int32 InputRate, int32 NumChannels);
	void Process(const float* Interleaved, int32 NumFrames, TArray<float>& Out);

private:
	float Mono(const float* Interleaved, int32 Frame) const;
	int32 Channels;
	double Step;
	double Position = 0.0;
	float Previous = 0.0f;
	bool bStarted = false;
};

/** The PCM of a sound wave as 16 kHz mono: the imported data in the editor, the fully
 *  decompressed PCM at runtime (the wave's Loading Behavior must allow it). */
bool LpmNpcDecodeSoundWave(USoundWave* Wave, TArray<float>& OutMono16k, FString& OutError);

/** The default capture device feeding a session's LISTEN track from the capture thread (the
 *  bridge's push functions are thread-safe and never block). */
class FLpmNpcMicrophone
{
public:
	explicit FLpmNpcMicrophone(TWeakPtr<FLpmNpcNative, ESPMode::ThreadSafe> InNative);
	~FLpmNpcMicrophone();
	bool Start(FString& OutError);
	void Stop();

private:
	struct FState;
	TUniquePtr<FState> State;
};
