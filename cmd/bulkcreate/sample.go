package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
)

const sampleUsage = `Usage: bulkcreate sample [flags] > FILE

Writes a CSV of generated, valid, distinct customers, for trials and
benchmarks.

Example:
  bulkcreate sample --rows 1000000 > big.csv

Flags:
`

func runSample(ctx context.Context, e env, args []string) error {
	fs := flag.NewFlagSet("sample", flag.ContinueOnError)
	rows := fs.Int("rows", 1000, "how many rows")
	prefix := fs.String("prefix", "customer", "local part of the generated emails")
	out := fs.String("o", "-", "output `file` (- for stdout)")
	posArgs, helped, err := parseArgs(e, fs, sampleUsage, args)
	if helped || err != nil {
		return err
	}
	if len(posArgs) != 0 {
		return usageError("sample: unexpected argument %q; try: bulkcreate sample --rows 1000 > sample.csv", posArgs[0])
	}
	if *rows < 0 {
		return usageError("sample: --rows %d: want 0 or more", *rows)
	}
	// The prefix goes unquoted into emails: anything else would make the
	// rows invalid, or split them.
	if *prefix == "" || strings.Trim(*prefix, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._+-") != "" {
		return usageError("sample: --prefix %q: want letters, digits, or . _ + -", *prefix)
	}
	var w io.Writer = e.stdout
	if *out != "-" {
		f, err := os.Create(*out)
		if err != nil {
			return usageError("sample: %v", err)
		}
		defer f.Close()
		w = f
	}
	bw := bufio.NewWriterSize(w, 64<<10)
	fmt.Fprintln(bw, "email,type")
	for i := range *rows {
		if i%65536 == 0 && ctx.Err() != nil {
			return withCode(exitInterrupted, ctx.Err())
		}
		typ := "INDIVIDUAL"
		if i%5 == 4 {
			typ = "BUSINESS"
		}
		fmt.Fprintf(bw, "%s%07d@example.com,%s\n", *prefix, i, typ)
	}
	return bw.Flush()
}
