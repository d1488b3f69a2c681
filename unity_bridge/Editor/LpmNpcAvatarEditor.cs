// Inspector of LpmNpcAvatar: the default fields and a "Test connection" button that connects to
// the daemon with the component's address, token and TLS settings and lists what it stores.
using System;
using UnityEditor;
using UnityEngine;

namespace LpmNpc.Editor
{
    [CustomEditor(typeof(LpmNpcAvatar))]
    public sealed class LpmNpcAvatarEditor : UnityEditor.Editor
    {
        string result;
        MessageType resultType = MessageType.None;

        public override void OnInspectorGUI()
        {
            DrawDefaultInspector();
            var avatar = (LpmNpcAvatar)target;
            EditorGUILayout.Space();
            if (GUILayout.Button("Test connection"))
            {
                try
                {
                    LpmConnectSettings connection = avatar.ConnectSettings();
                    connection.TimeoutMs = 3000;  // short: the editor waits for the answer
                    using (var client = LpmNpcClient.Connect(avatar.daemonAddress, connection))
                    {
                        uint versions = client.Ping();
                        result = "Connected to " + avatar.daemonAddress + ": " + versions + " character version(s) stored.";
                        resultType = MessageType.Info;
                    }
                }
                catch (DllNotFoundException)
                {
                    result = "The native library lpm_bridge is missing: build bridge_core and put it in Assets/Plugins/x86_64 (see the package README).";
                    resultType = MessageType.Error;
                }
                catch (LpmNpcException e)
                {
                    result = e.Status + ": " + e.Message;
                    resultType = MessageType.Error;
                }
            }
            if (!string.IsNullOrEmpty(result)) EditorGUILayout.HelpBox(result, resultType);
            if (Application.isPlaying && !string.IsNullOrEmpty(avatar.LastError))
                EditorGUILayout.HelpBox(avatar.LastError, MessageType.Warning);
        }
    }
}
