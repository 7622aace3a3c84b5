-- wrk script: POST /api/auth/sign-in/email with the bench user's credentials.
wrk.method = "POST"
wrk.body = '{"email":"bench@example.com","password":"bench-password-123"}'
wrk.headers["Content-Type"] = "application/json"
