package auth

import "fmt"

// CheckName returns why name is no valid user or site name (what says
// which), "" when it is: 1 to 64 characters, letters, digits and
// _ - . @ only.
func CheckName(what, name string) string {
	if name == "" || len(name) > 64 {
		return fmt.Sprintf("The %s name must be 1 to 64 characters.", what)
	}
	for _, r := range name {
		ok := r == '_' || r == '-' || r == '.' || r == '@' || (r >= 'a' && r <= 'z') || (r >= 'A' && r <= 'Z') || (r >= '0' && r <= '9')
		if !ok {
			return fmt.Sprintf("The %s name %q: use letters, digits and _ - . @ only.", what, name)
		}
	}
	return ""
}
