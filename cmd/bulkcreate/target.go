package main

import (
	"errors"
	"flag"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/bulkcreate/bulkcreate/internal/sandbox"
)

// Ripio's published targets.
var knownTargets = map[string]string{
	"sandbox":    "https://skala-sandbox.ripio.com",
	"production": "https://skala.ripio.com",
}

const embeddedTargetName = "embedded-sandbox"

// target is where rows go, as the environment and flags select it.
type target struct {
	BaseURL      string
	ClientID     string
	ClientSecret string
	Embedded     bool
}

// Name is the ledger's key for the target: base URL and client id, so rows
// done on one target are never skipped on another.
func (t target) Name() string {
	if t.Embedded {
		return embeddedTargetName
	}
	return strings.TrimRight(t.BaseURL, "/") + " client=" + t.ClientID
}

// canonicalURL spells a base URL one way, so that one server is one target
// of the ledger however the environment spells it: a second spelling would
// start a second set of rows, send every row again, and forget that the
// target assigns its own ids. Scheme and host in lower case, no default or
// zero-padded port, no trailing slash.
func canonicalURL(raw string) (string, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return "", err
	}
	if u.Host == "" {
		return "", errors.New("no host")
	}
	u.Scheme = strings.ToLower(u.Scheme)
	host, port := strings.ToLower(u.Hostname()), u.Port()
	if port != "" {
		n, err := strconv.ParseUint(port, 10, 16)
		if err != nil {
			return "", fmt.Errorf("port %q", port)
		}
		port = strconv.FormatUint(n, 10)
	}
	if (u.Scheme == "https" && port == "443") || (u.Scheme == "http" && port == "80") {
		port = ""
	}
	if strings.Contains(host, ":") {
		host = "[" + host + "]"
	}
	u.Host = host
	if port != "" {
		u.Host += ":" + port
	}
	u.Path = strings.TrimRight(u.Path, "/")
	u.RawPath = ""
	return u.String(), nil
}

// Production reports whether rows go to Ripio's production API.
func (t target) Production() bool {
	return strings.TrimRight(t.BaseURL, "/") == knownTargets["production"]
}

type targetFlags struct {
	secretFile string
	name       string // report and failures: --target
}

// registerSelect adds --target, for the commands that read the ledger.
func (tf *targetFlags) registerSelect(fs *flag.FlagSet) {
	fs.StringVar(&tf.name, "target", "", "read this `target` of the ledger, as report names it, or its base URL (default: the one RIPIO_BASE_URL and RIPIO_CLIENT_ID select, as for import)")
}

func (tf *targetFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&tf.secretFile, "client-secret-file", "", "read the client secret from this `file` (instead of RIPIO_CLIENT_SECRET)")
}

// resolve reads the target from the environment. needSecret is false for
// commands that only read the ledger.
func (tf *targetFlags) resolve(e env, needSecret bool) (target, error) {
	base := strings.TrimSpace(e.getenv("RIPIO_BASE_URL"))
	if base == "" {
		return target{Embedded: true}, nil
	}
	if u, ok := knownTargets[strings.ToLower(base)]; ok {
		base = u
	} else if !strings.Contains(base, "://") {
		return target{}, fmt.Errorf("RIPIO_BASE_URL %q: want sandbox, production or an https:// URL", base)
	} else {
		canon, err := canonicalURL(base)
		if err != nil {
			return target{}, fmt.Errorf("RIPIO_BASE_URL %q: %w", base, err)
		}
		base = canon
	}
	t := target{BaseURL: base, ClientID: strings.TrimSpace(e.getenv("RIPIO_CLIENT_ID"))}
	if t.ClientID == "" {
		return t, errors.New("RIPIO_BASE_URL is set but RIPIO_CLIENT_ID is not")
	}
	if !needSecret {
		return t, nil
	}
	file := tf.secretFile
	if file == "" {
		file = e.getenv("RIPIO_CLIENT_SECRET_FILE")
	}
	switch secret := e.getenv("RIPIO_CLIENT_SECRET"); {
	case file != "":
		b, err := os.ReadFile(file)
		if err != nil {
			return t, fmt.Errorf("client secret file: %w", err)
		}
		t.ClientSecret = strings.TrimSpace(string(b))
		if t.ClientSecret == "" {
			return t, fmt.Errorf("client secret file %s is empty", file)
		}
	case secret != "":
		t.ClientSecret = secret
	default:
		return t, errors.New("no client secret: set RIPIO_CLIENT_SECRET_FILE (a file holding it) or RIPIO_CLIENT_SECRET, or use --client-secret-file")
	}
	return t, nil
}

// startEmbedded serves the fake Ripio API on loopback, its customers kept in
// a file beside the ledger so that it answers across runs like a real server.
func startEmbedded(ledgerPath string) (*sandbox.Server, error) {
	opts := sandbox.DefaultOptions()
	opts.DBPath = sandboxDBPath(ledgerPath)
	srv, err := sandbox.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("embedded sandbox: %w", err)
	}
	return srv, nil
}

func sandboxDBPath(ledgerPath string) string {
	dir, base := filepath.Split(ledgerPath)
	return filepath.Join(dir, strings.TrimSuffix(base, filepath.Ext(base))+".sandbox.db")
}
