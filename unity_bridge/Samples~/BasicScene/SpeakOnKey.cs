// The sample's controls: Space speaks `line`, I interrupts, M toggles the microphone,
// P cycles the prompt. (Uses the classic Input Manager.)
using LpmNpc;
using UnityEngine;

public sealed class SpeakOnKey : MonoBehaviour
{
    public LpmNpcAvatar avatar;
    [Tooltip("A readable clip (Load Type: Decompress On Load)")]
    public AudioClip line;
    public string[] prompts = { "cheerful", "skeptical, arms crossed", "sad" };
    int prompt;
    bool listening;

    void Update()
    {
        if (avatar == null || !avatar.IsOpen) return;
        if (Input.GetKeyDown(KeyCode.Space) && line != null) avatar.SpeakClip(line);
        if (Input.GetKeyDown(KeyCode.I)) avatar.Interrupt();
        if (Input.GetKeyDown(KeyCode.M))
        {
            if (listening) avatar.StopListening(); else avatar.StartListening();
            listening = !listening;
        }
        if (Input.GetKeyDown(KeyCode.P) && prompts.Length > 0)
        {
            prompt = (prompt + 1) % prompts.Length;
            avatar.SetPrompt(prompts[prompt]);
        }
    }

    public void LogFinished(int segment, float ptsMs, bool interrupted)
    {
        Debug.Log("segment " + segment + (interrupted ? " interrupted" : " finished") + " at " + ptsMs + " ms");
    }
}
