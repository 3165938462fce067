package importer

import "strings"

// SpreadsheetSafe returns s as a cell that a spreadsheet shows as text:
// one that begins with =, +, -, @, a tab or a carriage return, which Excel,
// LibreOffice and Google Sheets take for a formula (OWASP's CSV
// injection), gets a leading apostrophe. So does one that begins with
// apostrophes before such a character, so that taking one apostrophe off
// (fromSpreadsheetSafe, which the reader applies to a failures file)
// always gives s back.
func SpreadsheetSafe(s string) string {
	if formulaLike(s) {
		return "'" + s
	}
	return s
}

// fromSpreadsheetSafe undoes SpreadsheetSafe. A cell a spreadsheet saved
// again without the apostrophe (it shows it as a text marker and drops it)
// is taken as it is.
func fromSpreadsheetSafe(s string) string {
	if len(s) > 1 && s[0] == '\'' && formulaLike(s[1:]) {
		return s[1:]
	}
	return s
}

func formulaLike(s string) bool {
	s = strings.TrimLeft(s, "'")
	return s != "" && strings.IndexByte("=+-@\t\r", s[0]) >= 0
}
