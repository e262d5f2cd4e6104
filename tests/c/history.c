/* Rooms that remember through the C ABI, without a client: configure (and its bad input), publish with positions,
 * the position, keys, the rooms' counters, join_from's and rtt's argument checks. */
#include "testlib.h"

int main(void)
{
    SnowWsPosition pos, since;
    SnowWsRoomStats stats;
    SnowString *room = S("c-history"), *plain = S("c-plain"), *msg = S("hello"), *key = S("k");
    SnowString *bad = snow_string_new("\xff", 1);

    result("configure size -1", snow_room_configure(room, -1, 0, 0));
    result("configure size 2000000", snow_room_configure(room, 2000000, 0, 0));
    result("configure ttl -5", snow_room_configure(room, 10, -5, 0));
    result("configure policy 7", snow_room_configure(room, 10, 0, 7));
    result("configure room not UTF-8", snow_room_configure(bad, 10, 0, 0));
    result("configure NULL room", snow_room_configure(NULL, 10, 0, 0));
    result("configure", snow_room_configure(room, 10, 60000, SNOW_WS_POLICY_DROP_OLDEST));
    result("position before any broadcast", snow_room_position(room, &pos));
    out("offset %lld, epoch length %zu", (long long)pos.offset, strlen(pos.epoch));
    result("publish 1", snow_room_publish(room, msg, NULL, NULL, &pos));
    out("offset %lld", (long long)pos.offset);
    result("publish 2 (out NULL)", snow_room_publish(room, msg, NULL, NULL, NULL));
    result("publish 3", snow_room_publish(room, msg, NULL, NULL, &pos));
    out("offset %lld", (long long)pos.offset);
    since = pos;
    result("position", snow_room_position(room, &pos));
    out("offset %lld, same epoch: %s", (long long)pos.offset, strcmp(pos.epoch, since.epoch) == 0 ? "yes" : "no");
    result("publish with a key (drop_oldest room)", snow_room_publish(room, msg, NULL, key, &pos));
    result("publish to a room without history", snow_room_publish(plain, msg, NULL, NULL, &pos));
    out("offset %lld", (long long)pos.offset);
    result("position of a room without history", snow_room_position(plain, &pos));
    result("position NULL out", snow_room_position(room, NULL));
    result("join_from NULL conn", snow_room_join_from(NULL, room, &since, NULL));
    result("join_from NULL since", snow_room_join_from((void *)1, room, NULL, NULL));
    result("join_from unknown conn", snow_room_join_from((void *)424242, room, &since, NULL));
    result("rtt NULL", snow_ws_conn_rtt_us(NULL));
    result("rtt unknown conn", snow_ws_conn_rtt_us((void *)424242));
    memset(&stats, 0, sizeof stats);
    result("room stats struct_size 0", snow_room_stats(&stats));
    stats.struct_size = sizeof stats;
    result("room stats", snow_room_stats(&stats));
    out("drops %lld replacements %lld", (long long)stats.policy_drops, (long long)stats.policy_replacements);
    snow_string_free(bad);
    return 0;
}
