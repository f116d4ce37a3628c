package numbers

import "testing"

// BenchmarkNormalize: a French mobile and a US number (whose region takes
// a match per NANPA country), with the default policy: "parse" is the
// work on a number not seen recently, "repeat" the same number again.
func BenchmarkNormalize(b *testing.B) {
	c, err := Policy{}.Compile()
	if err != nil {
		b.Fatal(err)
	}
	for _, n := range []string{"+33612345678", "+1 415 555 2671"} {
		b.Run(n+"/parse", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := c.normalize(n); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(n+"/repeat", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := c.Normalize(n); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
