package ctpolicy

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestCheck(t *testing.T) {
	const day = 24 * time.Hour
	a, b, c := Source{"A", true}, Source{"B", true}, Source{"C", true}
	tiledB := Source{"B", false}
	tiledA := Source{"A", false}
	for _, tc := range []struct {
		name     string
		lifetime time.Duration
		srcs     []Source
		rule     string // "" when met
	}{
		{"TwoOperators90d", 90 * day, []Source{a, b}, ""},
		{"Exactly180d", 180 * day, []Source{a, b}, ""},
		{"OneSCT", 90 * day, []Source{a}, RuleCount},
		{"None", 90 * day, nil, RuleCount},
		{"SameOperator", 90 * day, []Source{a, a}, RuleOperators},
		{"SameOperatorThree", 90 * day, []Source{a, a, a}, RuleOperators},
		{"OneTiledOneRFC", 90 * day, []Source{a, tiledB}, ""},
		{"AllTiled", 90 * day, []Source{tiledA, tiledB}, RuleRFC6962},
		{"Long2", 181 * day, []Source{a, b}, RuleCount},
		{"Long3", 181 * day, []Source{a, b, c}, ""},
		{"Long2Plus1", 190 * day, []Source{a, a, b}, ""},
		{"Long3SameOperator", 190 * day, []Source{a, a, a}, RuleCount},
		{"Long3PlusExtraSame", 190 * day, []Source{a, a, a, b}, ""},
		{"Long3OneOperatorCapped", 190 * day, []Source{a, a, a, a}, RuleCount},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := Check(tc.lifetime, tc.srcs)
			if tc.rule == "" {
				if err != nil {
					t.Fatalf("Check: %v, want nil", err)
				}
				return
			}
			var pe *PolicyError
			if !errors.As(err, &pe) || pe.Rule != tc.rule || !errors.Is(err, ErrPolicy) || !strings.Contains(err.Error(), tc.rule) {
				t.Fatalf("Check: %v, want rule %q", err, tc.rule)
			}
		})
	}
}
