package ledger

import (
	"context"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"

	"github.com/bulkcreate/bulkcreate/internal/row"
)

// wtx is the writer's transaction, as its operations see it.
type wtx struct {
	ctx     context.Context
	c       driverConn
	args    []driver.NamedValue
	changed bool // a statement changed a row
}

type driverConn interface {
	driver.ExecerContext
	driver.QueryerContext
}

// exec runs query with args: strings (Status included), ints, int64s.
func (tx *wtx) exec(query string, args ...any) (driver.Result, error) {
	if err := tx.bind(args); err != nil {
		return nil, err
	}
	res, err := tx.c.ExecContext(tx.ctx, query, tx.args)
	if err == nil {
		if n, _ := res.RowsAffected(); n > 0 {
			tx.changed = true
		}
	}
	return res, err
}

// queryInt runs query, which returns one integer, with args as exec takes
// them.
func (tx *wtx) queryInt(query string, args ...any) (int64, error) {
	if err := tx.bind(args); err != nil {
		return 0, err
	}
	rows, err := tx.c.QueryContext(tx.ctx, query, tx.args)
	if err != nil {
		return 0, err
	}
	defer rows.Close()
	dest := make([]driver.Value, 1)
	if err := rows.Next(dest); err != nil {
		return 0, err
	}
	n, ok := dest[0].(int64)
	if !ok {
		return 0, fmt.Errorf("%s: got %T, want an integer", query, dest[0])
	}
	return n, nil
}

// lineIssue runs query, which returns at most one row of status, email,
// type, customer_id and reason, with args as exec takes them; ok is false
// when it returns none.
func (tx *wtx) lineIssue(query string, args ...any) (li LineIssue, ok bool, err error) {
	if err := tx.bind(args); err != nil {
		return li, false, err
	}
	rows, err := tx.c.QueryContext(tx.ctx, query, tx.args)
	if err != nil {
		return li, false, err
	}
	defer rows.Close()
	dest := make([]driver.Value, 5)
	if err := rows.Next(dest); errors.Is(err, io.EOF) {
		return li, false, nil
	} else if err != nil {
		return li, false, err
	}
	var st string
	for i, f := range []*string{&st, &li.Email, &li.Type, &li.CustomerID, &li.Reason} {
		switch v := dest[i].(type) {
		case string:
			*f = v
		case []byte:
			*f = string(v)
		default:
			return li, false, fmt.Errorf("%s: column %d: got %T, want text", query, i+1, dest[i])
		}
	}
	li.Status = row.Status(st)
	return li, true, nil
}

// bind puts args in tx.args as the driver takes them.
func (tx *wtx) bind(args []any) error {
	tx.args = tx.args[:0]
	for i, a := range args {
		var v driver.Value
		switch a := a.(type) {
		case string:
			v = a
		case row.Status:
			v = string(a)
		case int:
			v = int64(a)
		case int64:
			v = a
		default:
			return fmt.Errorf("argument %d: unsupported type %T", i+1, a)
		}
		tx.args = append(tx.args, driver.NamedValue{Ordinal: i + 1, Value: v})
	}
	return nil
}
