DROP TABLE jwks;
DROP TABLE verification;
DROP TABLE account;
DROP TABLE session;
DROP TABLE "user";
