; Inno Setup 6 script: the Windows installer of GetMeds Desktop.
; Made by packaging/artefacts.py on the Windows build host:
;   ISCC.exe /DAppVersion=0.2.0 /DSourceDir=dist\getmeds /DOutputDir=dist\release
;            /DOutputBase=getmeds-0.2.0-windows-x86_64-setup packaging\getmeds.iss
; The version comes from the package (pyproject.toml) through /DAppVersion.
; IT installs it silently on every workstation:
;   getmeds-0.2.0-windows-x86_64-setup.exe /VERYSILENT /SUPPRESSMSGBOXES /NORESTART
; The site file (getmeds.toml) and the RDS CA bundle are kept across upgrades:
; put them next to getmeds.exe or in %PROGRAMDATA%\GetMeds.

#ifndef AppVersion
  #error Give the version: ISCC /DAppVersion=<version> (packaging/artefacts.py does)
#endif
#ifndef SourceDir
  #define SourceDir "..\dist\getmeds"
#endif
#ifndef OutputDir
  #define OutputDir "..\dist\release"
#endif
#ifndef OutputBase
  #define OutputBase "getmeds-" + AppVersion + "-windows-x86_64-setup"
#endif

[Setup]
; The AppId never changes: it is how an upgrade finds the installed version.
AppId={{5C0E9C4A-6F57-4A8E-9E51-2B1B7D0C3A11}
AppName=GetMeds Desktop
AppVersion={#AppVersion}
AppVerName=GetMeds Desktop {#AppVersion}
AppPublisher=GetMeds
DefaultDirName={autopf}\GetMeds
DefaultGroupName=GetMeds
DisableProgramGroupPage=yes
; Every workstation user runs the same installed program (IT installs it).
PrivilegesRequired=admin
ArchitecturesAllowed=x64compatible
ArchitecturesInstallIn64BitMode=x64compatible
MinVersion=10.0
OutputDir={#OutputDir}
OutputBaseFilename={#OutputBase}
Compression=lzma2/max
SolidCompression=yes
WizardStyle=modern
UninstallDisplayIcon={app}\getmeds.exe
CloseApplications=yes
RestartApplications=no
; Sign the installer and the uninstaller with the code-signing certificate the
; build host holds (the Windows buildspec defines the "signtool" sign tool when a
; certificate is configured); unsigned otherwise, and SmartScreen warns.
#ifdef SignTool
SignTool={#SignTool}
SignedUninstaller=yes
#endif

[Languages]
Name: "english"; MessagesFile: "compiler:Default.isl"

[Files]
; The whole PyInstaller folder (both programs and _internal). A site file IT put
; next to getmeds.exe is not part of the build and is never overwritten or removed.
Source: "{#SourceDir}\*"; Excludes: "getmeds.toml,global-bundle.pem"; DestDir: "{app}"; Flags: ignoreversion recursesubdirs createallsubdirs

[InstallDelete]
; A previous version's library folder: files removed in this version must not linger.
Type: filesandordirs; Name: "{app}\_internal"

[Icons]
Name: "{autoprograms}\GetMeds"; Filename: "{app}\getmeds.exe"
Name: "{autodesktop}\GetMeds"; Filename: "{app}\getmeds.exe"; Tasks: desktopicon

[Tasks]
Name: "desktopicon"; Description: "Create a desktop shortcut"; Flags: unchecked

[Run]
; The installed build checks itself once (exit code 0 and "OK"), as packaging/README.md says.
Filename: "{app}\getmeds.exe"; Parameters: "--smoke-test"; Flags: runhidden waituntilterminated; StatusMsg: "Checking the installation..."
