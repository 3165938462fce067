package postgres

import "fmt"

// benchKey is row i's key as the importer makes it: in file order
// ("id:cust-000000012", a customerId column numbered as the rows are) or in
// none ("email:" and an email, which comes in no order).
func benchKey(i int, ordered bool) string {
	if ordered {
		return fmt.Sprintf("id:cust-%09d", i)
	}
	return "email:" + benchEmail(i)
}

// benchEmail is row i's email, in no order.
func benchEmail(i int) string {
	return fmt.Sprintf("%08x.%d@example.com", uint32(i)*2654435761, i)
}
