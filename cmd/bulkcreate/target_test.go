package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestTargetFlags_Resolve(t *testing.T) {
	t.Parallel()
	secretFile := filepath.Join(t.TempDir(), "secret")
	os.WriteFile(secretFile, []byte("from-file\n"), 0o600)
	tests := []struct {
		name       string
		env        map[string]string
		file       string
		wantBase   string
		wantName   string
		wantSecret string
		wantProd   bool
		wantErr    string
	}{
		{name: "NothingIsTheEmbeddedSandbox", wantName: "embedded-sandbox"},
		{name: "ProductionShortcut", env: map[string]string{"RIPIO_BASE_URL": "production", "RIPIO_CLIENT_ID": "acme", "RIPIO_CLIENT_SECRET": "s"},
			wantBase: "https://skala.ripio.com", wantName: "https://skala.ripio.com client=acme", wantSecret: "s", wantProd: true},
		{name: "SandboxShortcut", env: map[string]string{"RIPIO_BASE_URL": "Sandbox", "RIPIO_CLIENT_ID": "acme", "RIPIO_CLIENT_SECRET": "s"},
			wantBase: "https://skala-sandbox.ripio.com", wantName: "https://skala-sandbox.ripio.com client=acme", wantSecret: "s"},
		{name: "SecretFileFlagWins", env: map[string]string{"RIPIO_BASE_URL": "sandbox", "RIPIO_CLIENT_ID": "acme", "RIPIO_CLIENT_SECRET": "env"}, file: secretFile,
			wantBase: "https://skala-sandbox.ripio.com", wantName: "https://skala-sandbox.ripio.com client=acme", wantSecret: "from-file"},
		{name: "SecretFileFromEnv", env: map[string]string{"RIPIO_BASE_URL": "https://x.example/", "RIPIO_CLIENT_ID": "acme", "RIPIO_CLIENT_SECRET_FILE": secretFile},
			wantBase: "https://x.example", wantName: "https://x.example client=acme", wantSecret: "from-file"},
		// One server is one target however RIPIO_BASE_URL spells it: a
		// second spelling would send every row again, and forget that the
		// target assigns its own ids.
		{name: "ProductionSpelledOtherwise", env: map[string]string{"RIPIO_BASE_URL": "HTTPS://Skala.Ripio.com:443/", "RIPIO_CLIENT_ID": "acme", "RIPIO_CLIENT_SECRET": "s"},
			wantBase: "https://skala.ripio.com", wantName: "https://skala.ripio.com client=acme", wantSecret: "s", wantProd: true},
		{name: "PortSpelledOtherwise", env: map[string]string{"RIPIO_BASE_URL": "http://127.0.0.1:047111", "RIPIO_CLIENT_ID": "acme", "RIPIO_CLIENT_SECRET": "s"},
			wantBase: "http://127.0.0.1:47111", wantName: "http://127.0.0.1:47111 client=acme", wantSecret: "s"},
		{name: "DefaultHTTPPort", env: map[string]string{"RIPIO_BASE_URL": "http://LOCALHOST:80", "RIPIO_CLIENT_ID": "acme", "RIPIO_CLIENT_SECRET": "s"},
			wantBase: "http://localhost", wantName: "http://localhost client=acme", wantSecret: "s"},
		{name: "BadPort", env: map[string]string{"RIPIO_BASE_URL": "https://x.example:99999", "RIPIO_CLIENT_ID": "acme", "RIPIO_CLIENT_SECRET": "s"}, wantErr: "port"},
		{name: "MissingSecretFile", env: map[string]string{"RIPIO_BASE_URL": "sandbox", "RIPIO_CLIENT_ID": "acme"}, file: "/nonexistent/secret", wantErr: "client secret file"},
		{name: "NoClientID", env: map[string]string{"RIPIO_BASE_URL": "sandbox"}, wantErr: "RIPIO_CLIENT_ID"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tf := targetFlags{secretFile: tt.file}
			got, err := tf.resolve(env{getenv: func(k string) string { return tt.env[k] }}, true)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("resolve() err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("resolve() err = %v", err)
			}
			if got.BaseURL != tt.wantBase || got.Name() != tt.wantName || got.ClientSecret != tt.wantSecret || got.Production() != tt.wantProd {
				t.Errorf("resolve() = base %q name %q secret %q prod %v, want %q %q %q %v",
					got.BaseURL, got.Name(), got.ClientSecret, got.Production(), tt.wantBase, tt.wantName, tt.wantSecret, tt.wantProd)
			}
		})
	}
}
