package pipeline

import (
	"strings"
	"testing"
)

func TestValidate_SearchSettings(t *testing.T) {
	cases := []struct {
		name string
		edit func(*Config)
		want string
	}{
		{"unknown method", func(c *Config) { c.SearchMethods = List{"evolution", "annealing"} }, `--search-methods: unknown method "annealing"`},
		{"twice", func(c *Config) { c.SearchMethods = List{"evolution", "evolution"} }, `"evolution" is listed twice`},
		{"no calib", func(c *Config) { c.SearchMethods, c.Criteria, c.Calib = List{"evolution"}, List{"magnitude"}, "" }, "needs --calib FILE"},
		{"negative budget", func(c *Config) { c.SearchMethods, c.SearchBudget = List{"evolution"}, -2 }, "--search-budget -2"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := Defaults()
			c.Model, c.Out, c.Calib, c.EvalPPL = "m", "o", "config_test.go", List{"x=text:f.txt"}
			tc.edit(&c)
			_, err := c.validate()
			if err == nil || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "\n") {
				t.Fatalf("err = %v; want one line containing %q", err, tc.want)
			}
		})
	}
}
