package web

import (
	"github.com/flownexus/flownexus/internal/auth"
)

// dataPatterns are the URL patterns of the live stream, the device page's
// actions and history, and the data explorer (added to Patterns).
var dataPatterns = []string{"/live", "/devices/{endpoint}/operations", "/devices/{endpoint}/operations/{id}/cancel",
	"/devices/{endpoint}/history", "/data", "/data/export"}

func init() {
	Patterns = append(Patterns, dataPatterns...)
	pageNames = append(pageNames, "history", "data")
}

// dataRoutes registers the live stream, the device page's actions and
// history chart, and the data explorer with its export.
func (w *Web) dataRoutes() {
	w.live = newLiveHub(w.cfg.Events, w.cfg.Store)
	w.route("GET /live", auth.ViewData, w.liveStream)
	w.route("POST /devices/{endpoint}/operations", auth.PerformOperations, w.deviceOperation)
	w.route("POST /devices/{endpoint}/operations/{id}/cancel", auth.PerformOperations, w.cancelOperation)
	w.route("GET /devices/{endpoint}/history", auth.ViewData, w.history)
}
