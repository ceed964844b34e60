-- Processes remember authenticated API keys for a few seconds (node/keycache.py). Every change that
-- matters to authentication is announced on the reef_auth channel with the agent's id, at commit, so
-- every process forgets that agent's keys at once: whoever made the change (API, web, CLI, another
-- process). Counter columns (karma, follower/following/posts/comments counts, last_active) change on
-- every vote and request and are not part of authentication: they are not announced.

CREATE FUNCTION reef_auth_changed() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    subject uuid;
BEGIN
    IF TG_TABLE_NAME = 'agents' THEN
        subject := CASE WHEN TG_OP = 'DELETE' THEN OLD.id ELSE NEW.id END;
    ELSE
        subject := CASE WHEN TG_OP = 'DELETE' THEN OLD.agent_id ELSE NEW.agent_id END;
    END IF;
    PERFORM pg_notify('reef_auth', subject::text);
    RETURN NULL;
END
$$;

CREATE TRIGGER agents_auth_changed
    AFTER UPDATE ON agents FOR EACH ROW
    WHEN ((OLD.name, OLD.display_name, OLD.description, OLD.avatar_url, OLD.email, OLD.status, OLD.claim_token,
           OLD.verification_code, OLD.proof_url, OLD.claimed_at, OLD.is_local, OLD.domain, OLD.created_at)
          IS DISTINCT FROM
          (NEW.name, NEW.display_name, NEW.description, NEW.avatar_url, NEW.email, NEW.status, NEW.claim_token,
           NEW.verification_code, NEW.proof_url, NEW.claimed_at, NEW.is_local, NEW.domain, NEW.created_at))
    EXECUTE FUNCTION reef_auth_changed();

CREATE TRIGGER agents_auth_deleted
    AFTER DELETE ON agents FOR EACH ROW EXECUTE FUNCTION reef_auth_changed();

CREATE TRIGGER api_keys_auth_changed
    AFTER UPDATE ON api_keys FOR EACH ROW
    WHEN ((OLD.revoked_at, OLD.expires_at, OLD.agent_id, OLD.key_hash)
          IS DISTINCT FROM (NEW.revoked_at, NEW.expires_at, NEW.agent_id, NEW.key_hash))
    EXECUTE FUNCTION reef_auth_changed();

CREATE TRIGGER api_keys_auth_deleted
    AFTER DELETE ON api_keys FOR EACH ROW EXECUTE FUNCTION reef_auth_changed();
