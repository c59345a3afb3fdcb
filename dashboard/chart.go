package dashboard

import (
	_ "embed"
	"fmt"
	"html/template"
	"net/http"
	"strings"
	"time"
)

// Charts are inline SVG polylines over the last hour, drawn from the
// index's samples: no JavaScript, no chart library, and the figures they
// show are also in the page as text.

const chartW, chartH = 240, 48

// sizeChart is the tree size over the last hour.
func sizeChart(s []sample) template.HTML {
	return polyline("tree size, last hour", s, func(i int) float64 { return float64(s[i].Size) }, "")
}

// rateChart is the entries integrated per second between samples.
func rateChart(s []sample) template.HTML {
	return polyline("entries integrated per second, last hour", s, perSecond(s, func(x sample) uint64 { return x.Size }), "/s")
}

// submissionsChart is the submissions per second this process received
// between samples.
func submissionsChart(s []sample) template.HTML {
	return polyline("submissions per second to this process, last hour", s, perSecond(s, func(x sample) uint64 { return x.Submissions }), "/s")
}

// perSecond is the growth per second of a counter of the samples since
// the sample before (0 for the first, or when the counter went back).
func perSecond(s []sample, counter func(sample) uint64) func(int) float64 {
	return func(i int) float64 {
		if i == 0 {
			return 0
		}
		d := s[i].At.Sub(s[i-1].At).Seconds()
		a, b := counter(s[i-1]), counter(s[i])
		if d <= 0 || b < a {
			return 0
		}
		return float64(b-a) / d
	}
}

// delayChart is the median merge delay of the entries integrated between
// samples, in seconds.
func delayChart(s []sample) template.HTML {
	return polyline("merge delay (median, seconds), last hour", s, func(i int) float64 { return s[i].MergeDelay.Seconds() }, " s")
}

func polyline(title string, s []sample, y func(int) float64, unit string) template.HTML {
	var b strings.Builder
	fmt.Fprintf(&b, `<svg class="chart" viewBox="0 0 %d %d" width="%d" height="%d" role="img" aria-label="%s"><title>%s</title>`,
		chartW, chartH+12, chartW, chartH+12, title, title)
	fmt.Fprintf(&b, `<rect x="0" y="0" width="%d" height="%d" class="bg"/>`, chartW, chartH)
	if len(s) >= 2 {
		start, end := s[0].At, s[len(s)-1].At
		if span := end.Sub(start); span < time.Minute {
			start = end.Add(-time.Minute)
		}
		lo, hi := y(0), y(0)
		for i := range s {
			lo, hi = min(lo, y(i)), max(hi, y(i))
		}
		if hi == lo {
			hi = lo + 1
		}
		b.WriteString(`<polyline fill="none" class="line" points="`)
		for i := range s {
			x := float64(chartW) * s[i].At.Sub(start).Seconds() / end.Sub(start).Seconds()
			v := float64(chartH-2) - float64(chartH-4)*(y(i)-lo)/(hi-lo)
			fmt.Fprintf(&b, "%.1f,%.1f ", x, v)
		}
		b.WriteString(`"/>`)
		fmt.Fprintf(&b, `<text x="2" y="%d" class="lbl">%s%s max</text>`, chartH+10, trimFloat(hi), unit)
	} else {
		fmt.Fprintf(&b, `<text x="2" y="%d" class="lbl">collecting samples</text>`, chartH+10)
	}
	b.WriteString(`</svg>`)
	return template.HTML(b.String()) // built only from numbers and the constant titles above
}

func trimFloat(f float64) string {
	if f >= 100 || f == float64(int64(f)) {
		return fmt.Sprintf("%.0f", f)
	}
	return fmt.Sprintf("%.2f", f)
}

//go:embed style.css
var style []byte

func serveStyle(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/css; charset=utf-8")
	w.Header().Set("Cache-Control", "public, max-age=300")
	w.Write(style)
}
