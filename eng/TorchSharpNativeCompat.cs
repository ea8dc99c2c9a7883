// Marks one GNU symbol-version requirement of an ELF shared library weak, so that the dynamic
// loader accepts a system library that lacks that version. TorchSharp 0.107's libLibTorchSharp.so
// asks for GLIBCXX_3.4.32 (GCC 13) only for `_ZSt21ios_base_library_initv`, a link-time marker
// with no relocation; Debian 12 and Ubuntu 22.04 ship an older libstdc++. See DESIGN.md.
//
// This file is compiled twice: by MSBuild's RoslynCodeTaskFactory (eng/TorchSharpNativeCompat.targets)
// (netstandard2.0 APIs only) and by the test project, which defines ELF_PATCH_TESTS to leave out
// the MSBuild task class.
using System;
using System.IO;
using System.Text;

namespace DeepVariants.Build
{
    /// <summary>What <see cref="ElfVersionNeeds.MarkWeak"/> found and did.</summary>
    public enum MarkWeakResult
    {
        /// <summary>The requirement was strong and is now weak.</summary>
        Marked,
        /// <summary>The requirement was already weak: nothing was written.</summary>
        AlreadyWeak,
        /// <summary>The library does not ask for that version: nothing was written.</summary>
        NotRequired,
    }

    /// <summary>Reads and edits the version-needs table (.gnu.version_r) of a 64-bit little-endian ELF file.</summary>
    public static class ElfVersionNeeds
    {
        private const uint ShtGnuVerneed = 0x6ffffffe;
        private const ushort VerFlagWeak = 0x2;

        /// <summary>
        /// Sets VER_FLG_WEAK on every requirement of <paramref name="versionName"/> in the file at
        /// <paramref name="path"/>. The file is rewritten through a temporary copy and a move, so a
        /// hard link (for example into a package cache) is replaced rather than edited in place.
        /// </summary>
        public static MarkWeakResult MarkWeak(string path, string versionName)
        {
            byte[] image = File.ReadAllBytes(path);
            int found = 0, changed = 0;
            foreach (int flagsOffset in FindRequirementFlags(image, path, versionName))
            {
                found++;
                ushort flags = BitConverter.ToUInt16(image, flagsOffset);
                if ((flags & VerFlagWeak) == 0)
                {
                    WriteUInt16(image, flagsOffset, (ushort)(flags | VerFlagWeak));
                    changed++;
                }
            }
            if (found == 0)
                return MarkWeakResult.NotRequired;
            if (changed == 0)
                return MarkWeakResult.AlreadyWeak;

            string temporary = path + ".weak-" + Guid.NewGuid().ToString("N") + ".tmp";
            try
            {
                // The copy keeps the file's mode; Replace renames over the original in one step.
                File.Copy(path, temporary);
                File.WriteAllBytes(temporary, image);
                File.Replace(temporary, path, null);
            }
            finally
            {
                if (File.Exists(temporary))
                    File.Delete(temporary);
            }
            return MarkWeakResult.Marked;
        }

        /// <summary>True when the file requires <paramref name="versionName"/> and every such requirement is weak.</summary>
        public static bool IsWeak(string path, string versionName)
        {
            byte[] image = File.ReadAllBytes(path);
            bool any = false;
            foreach (int flagsOffset in FindRequirementFlags(image, path, versionName))
            {
                any = true;
                if ((BitConverter.ToUInt16(image, flagsOffset) & VerFlagWeak) == 0)
                    return false;
            }
            return any;
        }

        /// <summary>True when the shared library at <paramref name="path"/> defines the symbol version <paramref name="versionName"/>.</summary>
        public static bool DefinesVersion(string path, string versionName)
        {
            // Version names live NUL-terminated in .dynstr; a byte search is exact enough for "GLIBCXX_x.y.z".
            byte[] needle = Encoding.ASCII.GetBytes(versionName + "\0");
            byte[] image = File.ReadAllBytes(path);
            for (int start = Array.IndexOf(image, needle[0]); start >= 0 && start <= image.Length - needle.Length;
                 start = Array.IndexOf(image, needle[0], start + 1))
            {
                int i = 1;
                while (i < needle.Length && image[start + i] == needle[i])
                    i++;
                if (i == needle.Length)
                    return true;
            }
            return false;
        }

        private static System.Collections.Generic.List<int> FindRequirementFlags(byte[] image, string path, string versionName)
        {
            if (image.Length < 64 || image[0] != 0x7f || image[1] != (byte)'E' || image[2] != (byte)'L' || image[3] != (byte)'F')
                throw new InvalidDataException($"'{path}' is not an ELF file.");
            if (image[4] != 2 || image[5] != 1)
                throw new InvalidDataException($"'{path}' is not a 64-bit little-endian ELF file.");

            long sectionTable = checked((long)BitConverter.ToUInt64(image, 0x28));
            int sectionSize = BitConverter.ToUInt16(image, 0x3A);
            int sectionCount = BitConverter.ToUInt16(image, 0x3C);
            var offsets = new System.Collections.Generic.List<int>();
            for (int s = 0; s < sectionCount; s++)
            {
                int header = checked((int)(sectionTable + (long)s * sectionSize));
                if (BitConverter.ToUInt32(image, header + 4) != ShtGnuVerneed)
                    continue;
                int tableOffset = checked((int)BitConverter.ToUInt64(image, header + 24));
                int linkedStrings = (int)BitConverter.ToUInt32(image, header + 40);
                int needCount = (int)BitConverter.ToUInt32(image, header + 44);
                int stringHeader = checked((int)(sectionTable + (long)linkedStrings * sectionSize));
                int strings = checked((int)BitConverter.ToUInt64(image, stringHeader + 24));

                int need = tableOffset;
                for (int n = 0; n < needCount; n++)
                {
                    int auxCount = BitConverter.ToUInt16(image, need + 2);
                    int aux = need + (int)BitConverter.ToUInt32(image, need + 8);
                    for (int a = 0; a < auxCount; a++)
                    {
                        int name = strings + (int)BitConverter.ToUInt32(image, aux + 8);
                        if (ReadCString(image, name) == versionName)
                            offsets.Add(aux + 4);
                        aux += (int)BitConverter.ToUInt32(image, aux + 12);
                    }
                    need += (int)BitConverter.ToUInt32(image, need + 12);
                }
            }
            return offsets;
        }

        private static string ReadCString(byte[] image, int offset)
        {
            int end = Array.IndexOf(image, (byte)0, offset);
            return Encoding.ASCII.GetString(image, offset, end - offset);
        }

        private static void WriteUInt16(byte[] image, int offset, ushort value)
        {
            image[offset] = (byte)value;
            image[offset + 1] = (byte)(value >> 8);
        }
    }

#if !ELF_PATCH_TESTS
    /// <summary>
    /// MSBuild task: for each library in <see cref="Libraries"/>, marks the requirement of
    /// <see cref="VersionName"/> weak when the system's libstdc++ lacks that version.
    /// </summary>
    public class MarkSymbolVersionWeak : Microsoft.Build.Utilities.Task
    {
        [Microsoft.Build.Framework.Required]
        public Microsoft.Build.Framework.ITaskItem[] Libraries { get; set; } = Array.Empty<Microsoft.Build.Framework.ITaskItem>();

        [Microsoft.Build.Framework.Required]
        public string VersionName { get; set; } = "";

        /// <summary>The system libstdc++ to check; found with ldconfig when empty.</summary>
        public string SystemLibrary { get; set; } = "";

        /// <summary>Package cache folder that must never be edited.</summary>
        public string PackageRoot { get; set; } = "";

        public override bool Execute()
        {
            string system = string.IsNullOrEmpty(SystemLibrary) ? FindSystemLibStdCxx() : SystemLibrary;
            if (system.Length == 0)
            {
                Log.LogMessage(Microsoft.Build.Framework.MessageImportance.High,
                    "TorchSharp native compat: no system libstdc++.so.6 found; leaving libLibTorchSharp.so unchanged.");
                return true;
            }
            if (ElfVersionNeeds.DefinesVersion(system, VersionName))
            {
                Log.LogMessage(Microsoft.Build.Framework.MessageImportance.Normal,
                    $"TorchSharp native compat: {system} defines {VersionName}; nothing to do.");
                return true;
            }

            foreach (var item in Libraries)
            {
                string library = Path.GetFullPath(item.ItemSpec);
                if (!string.IsNullOrEmpty(PackageRoot) && library.StartsWith(Path.GetFullPath(PackageRoot), StringComparison.Ordinal))
                {
                    Log.LogError($"TorchSharp native compat: refusing to edit '{library}', which is inside the package cache '{PackageRoot}'.");
                    return false;
                }
                MarkWeakResult result = ElfVersionNeeds.MarkWeak(library, VersionName);
                string what = result switch
                {
                    MarkWeakResult.Marked => $"marked the {VersionName} requirement weak",
                    MarkWeakResult.AlreadyWeak => $"the {VersionName} requirement is already weak",
                    _ => $"does not require {VersionName}",
                };
                Log.LogMessage(Microsoft.Build.Framework.MessageImportance.High,
                    $"TorchSharp native compat: {library}: {what} ({system} lacks it).");
            }
            return true;
        }

        private static string FindSystemLibStdCxx()
        {
            foreach (string candidate in new[]
            {
                "/usr/lib/x86_64-linux-gnu/libstdc++.so.6", "/lib/x86_64-linux-gnu/libstdc++.so.6",
                "/usr/lib/aarch64-linux-gnu/libstdc++.so.6", "/usr/lib64/libstdc++.so.6", "/usr/lib/libstdc++.so.6",
            })
            {
                if (File.Exists(candidate))
                    return candidate;
            }
            return "";
        }
    }
#endif
}
