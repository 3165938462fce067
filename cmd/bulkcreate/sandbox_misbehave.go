package main

import (
	"flag"
	"fmt"
	"net"
	"strings"

	"github.com/bulkcreate/bulkcreate/internal/sandbox"
)

// addMisbehaviourFlags adds the flags that make the sandbox play a server
// that misbehaves, so that what the importer makes of one can be tried.
func addMisbehaviourFlags(fs *flag.FlagSet, opts *sandbox.Options) {
	fs.BoolVar(&opts.CreateHTML200, "html-200", false, "answer every create 200 with an HTML maintenance page, storing nothing")
	fs.BoolVar(&opts.AssignIDs, "assign-ids", false, "store customers under ids of the server's own and answer those")
	fs.BoolVar(&opts.OtherEmail, "other-email", false, "answer creates with another person's email")
	fs.StringVar(&opts.TokenEcho, "token-echo", "", "refuse every token request, echoing the client secret in this `encoding`: "+
		strings.Join(sandbox.EchoEncodings(), ", "))
	fs.IntVar(&opts.TokenEchoStatus, "token-echo-status", 401, "HTTP `status` of --token-echo's answers")
	fs.BoolVar(&opts.TokenNotFound, "token-404", false, "answer the token endpoint 404 with an HTML page, as at a wrong base URL")
	fs.DurationVar(&opts.ThrottleAll, "throttle-all", 0, "answer every create 429 with this Retry-After (e.g. 8760h)")
	fs.Func("reject-emails", "refuse the creates of these `emails` (comma-separated, any case) with a 400 on the email", func(s string) error {
		for _, e := range strings.Split(s, ",") {
			if e = strings.TrimSpace(e); e != "" {
				opts.RejectEmails = append(opts.RejectEmails, e)
			}
		}
		return nil
	})
}

// checkLoopback refuses a listen address off this machine: the sandbox
// accepts credentials printed on its first line.
func checkLoopback(addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return usageError("sandbox: --addr %q is not a loopback host:port (%v); try: bulkcreate sandbox --addr 127.0.0.1:8080", addr, err)
	}
	if ip := net.ParseIP(host); host == "localhost" || ip != nil && ip.IsLoopback() {
		return nil
	}
	what := fmt.Sprintf("%q is not a loopback address", host)
	if host == "" || net.ParseIP(host) != nil && net.ParseIP(host).IsUnspecified() {
		what = "it listens on every interface"
	}
	return usageError("sandbox: --addr %s: %s, and the sandbox's credentials are fixed; it listens on loopback only; try: bulkcreate sandbox --addr 127.0.0.1:8080", addr, what)
}
