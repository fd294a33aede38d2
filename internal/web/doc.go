// Package web is the operator's dashboard: server-rendered HTML pages
// (html/template, embedded in the binary with their CSS) on the HTTP
// server beside the REST API. It owns the dashboard's routes and their
// route table (every page declares the auth.Permission it needs and is
// decided by auth.Authorize, as the API's routes are), login and logout,
// server-side sessions (stored in the database by package store; the
// cookie holds a random token whose SHA-256 is the session's id), CSRF
// protection (a per-session token and an Origin check), login rate
// limiting, the security headers of every dashboard response, and the
// static assets, served at checksum URLs with immutable caching.
//
// A page shows the devices of the user's scope (auth.Subject.Scope),
// narrowed by the site switcher in the header (a cookie); a device
// outside it is 404. The administration under /admin/ (users, sites,
// memberships, device assignment, API tokens, the audit log, device
// credentials) and the profile page are this package's too; every
// change made there is audited.
//
// Errors are mapped to a status and a message by package problem, as the
// API's are, and rendered as an HTML page.
//
// It shares auth, problem, render and store with the API, and must not
// import api, app or cli (app mounts it).
package web
