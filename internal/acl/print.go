package acl

import (
	"fmt"
	"io"
	"text/tabwriter"
)

// Print writes acls as a table, one binding a line, with what each is for.
func Print(w io.Writer, acls []ACL) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "PRINCIPAL\tOPERATION\tRESOURCE\tPATTERN\tNAME\tFOR")
	for _, a := range acls {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", a.Principal, a.Operation, a.Resource, a.Pattern, a.Name, a.Why)
	}
	return tw.Flush()
}
