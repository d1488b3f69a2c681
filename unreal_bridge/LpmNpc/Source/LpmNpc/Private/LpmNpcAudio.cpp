#include "LpmNpcAudio.h"

#include "AudioCaptureCore.h"
#include "AudioDevice.h"
#include "Engine/Engine.h"
#include "LpmNpcModule.h"
#include "LpmNpcNative.h"
#include "Misc/EngineVersionComparison.h"
#include "Sound/SoundWave.h"
#include "lpm_bridge.h"

// ---- resampler ---------------------------------------------------------------------------------

FLpmNpcResampler::FLpmNpcResampler(int32 InputRate, int32 NumChannels)
	: Channels(FMath::Clamp(NumChannels, 1, 16))
	, Step(static_cast<double>(FMath::Max(InputRate, 1)) / LPM_SAMPLE_RATE)
{
}

float FLpmNpcResampler::Mono(const float* Interleaved, int32 Frame) const
{
	float Sum = 0.0f;
	for (int32 C = 0; C < Channels; ++C)
	{
		Sum += Interleaved[Frame * Channels + C];
	}
	return Sum / Channels;
}

void FLpmNpcResampler::Process(const float* Interleaved, int32 NumFrames, TArray<float>& Out)
{
	if (NumFrames <= 0)
	{
		return;
	}
	// Coordinate 0 is the previous call's last sample, coordinate i (1..NumFrames) input frame i-1.
	if (!bStarted)
	{
		Previous = Mono(Interleaved, 0);
		Position = 1.0;
		bStarted = true;
	}
	while (Position <= NumFrames)
	{
		const int32 I = FMath::FloorToInt32(Position);
		const double T = Position - I;
		const float A = I == 0 ? Previous : Mono(Interleaved, I - 1);
		const float B = I >= NumFrames ? A : Mono(Interleaved, I);
		Out.Add(static_cast<float>(A + (B - A) * T));
		Position += Step;
	}
	Previous = Mono(Interleaved, NumFrames - 1);
	Position -= NumFrames;
}

// ---- sound waves -------------------------------------------------------------------------------

bool LpmNpcDecodeSoundWave(USoundWave* Wave, TArray<float>& OutMono16k, FString& OutError)
{
	if (Wave == nullptr)
	{
		OutError = TEXT("SpeakSoundWave: Wave is null");
		return false;
	}
	TArray<int16> Pcm;
	int32 SampleRate = 0;
	int32 NumChannels = 0;
#if WITH_EDITORONLY_DATA
	{
		TArray<uint8> Raw;
		uint32 Rate = 0;
		uint16 Channels = 0;
		if (Wave->GetImportedSoundWaveData(Raw, Rate, Channels) && Raw.Num() >= 2)
		{
			Pcm.SetNumUninitialized(Raw.Num() / 2);
			FMemory::Memcpy(Pcm.GetData(), Raw.GetData(), Pcm.Num() * sizeof(int16));
			SampleRate = static_cast<int32>(Rate);
			NumChannels = Channels;
		}
	}
#endif
	if (Pcm.Num() == 0)
	{
		// Packaged builds: ask the audio device for the fully decompressed PCM.
		if (FAudioDevice* Device = GEngine != nullptr ? GEngine->GetMainAudioDeviceRaw() : nullptr)
		{
			Device->Precache(Wave, /*bSynchronous=*/true, /*bTrackMemory=*/false, /*bForceFullDecompression=*/true);
		}
		if (Wave->RawPCMData != nullptr && Wave->RawPCMDataSize >= 2)
		{
			Pcm.SetNumUninitialized(Wave->RawPCMDataSize / 2);
			FMemory::Memcpy(Pcm.GetData(), Wave->RawPCMData, Pcm.Num() * sizeof(int16));
			SampleRate = static_cast<int32>(Wave->GetSampleRateForCurrentPlatform());
			NumChannels = Wave->NumChannels;
		}
	}
	if (Pcm.Num() == 0 || SampleRate < 8000 || NumChannels < 1)
	{
		OutError = FString::Printf(TEXT("SpeakSoundWave: cannot read the PCM of %s (set its Loading Behavior to "
			"Force Inline, or pass TTS samples to SpeakPcm)"), *Wave->GetName());
		return false;
	}
	TArray<float> Interleaved;
	Interleaved.SetNumUninitialized(Pcm.Num());
	for (int32 I = 0; I < Pcm.Num(); ++I)
	{
		Interleaved[I] = Pcm[I] / 32768.0f;
	}
	FLpmNpcResampler Resampler(SampleRate, NumChannels);
	OutMono16k.Reset();
	Resampler.Process(Interleaved.GetData(), Interleaved.Num() / NumChannels, OutMono16k);
	return true;
}

// ---- microphone --------------------------------------------------------------------------------

struct FLpmNpcMicrophone::FState
{
	TWeakPtr<FLpmNpcNative, ESPMode::ThreadSafe> Native;
	Audio::FAudioCapture Capture;
	TUniquePtr<FLpmNpcResampler> Resampler;  // made on the capture thread from its first buffer
	TArray<float> Mono16k;
	bool bOpen = false;

	void OnAudio(const float* Audio, int32 NumFrames, int32 NumChannels, int32 SampleRate)
	{
		TSharedPtr<FLpmNpcNative, ESPMode::ThreadSafe> Pinned = Native.Pin();
		if (!Pinned.IsValid() || Pinned->Session() == nullptr || NumFrames <= 0)
		{
			return;
		}
		if (!Resampler.IsValid())
		{
			Resampler = MakeUnique<FLpmNpcResampler>(SampleRate, NumChannels);
		}
		Mono16k.Reset();
		Resampler->Process(Audio, NumFrames, Mono16k);
		if (Mono16k.Num() > 0)
		{
			lpm_session_push_audio_f32(Pinned->Session(), LPM_TRACK_LISTEN, Mono16k.GetData(), Mono16k.Num(), -1);
		}
	}
};

FLpmNpcMicrophone::FLpmNpcMicrophone(TWeakPtr<FLpmNpcNative, ESPMode::ThreadSafe> InNative)
	: State(MakeUnique<FState>())
{
	State->Native = InNative;
}

FLpmNpcMicrophone::~FLpmNpcMicrophone()
{
	Stop();
}

bool FLpmNpcMicrophone::Start(FString& OutError)
{
	Audio::FAudioCaptureDeviceParams Params;  // the default input device, float samples
	FState* S = State.Get();
#if UE_VERSION_OLDER_THAN(5, 3, 0)
	Audio::FOnCaptureFunction OnCapture = [S](const float* Audio, int32 NumFrames, int32 NumChannels, int32 SampleRate, double, bool)
	{
		S->OnAudio(Audio, NumFrames, NumChannels, SampleRate);
	};
	S->bOpen = S->Capture.OpenCaptureStream(Params, MoveTemp(OnCapture), 1024);
#else
	Audio::FOnAudioCaptureFunction OnCapture = [S](const void* Audio, int32 NumFrames, int32 NumChannels, int32 SampleRate, double, bool)
	{
		S->OnAudio(static_cast<const float*>(Audio), NumFrames, NumChannels, SampleRate);
	};
	S->bOpen = S->Capture.OpenAudioCaptureStream(Params, MoveTemp(OnCapture), 1024);
#endif
	if (!S->bOpen || !S->Capture.StartStream())
	{
		OutError = TEXT("StartListening: the default audio capture device could not be opened");
		Stop();
		return false;
	}
	return true;
}

void FLpmNpcMicrophone::Stop()
{
	if (State.IsValid() && State->bOpen)
	{
		State->Capture.StopStream();
		State->Capture.CloseStream();  // returns after the last callback
		State->bOpen = false;
	}
}
